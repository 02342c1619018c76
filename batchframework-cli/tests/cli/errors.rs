//! Bad input ends with one `error:` line and an exit code, never a panic, and a password in
//! the database URL appears nowhere.

use batchframework_tests::{backend_tests, TestBackend};

use crate::support::{run, Db, Run};

backend_tests!(unknown_ids_fail, an_unmigrated_database_says_to_migrate);

fn unknown_ids_fail<B: TestBackend>() {
    let db = Db::<B>::migrated();
    for args in [
        &["show", "999"][..],
        &["watch", "999"],
        &["retry", "999"],
        &["cancel", "999"],
    ] {
        let line = db.run(args).error(1).to_owned();
        assert_eq!(
            line, "error: there is no batch operation with id 999",
            "{args:?}"
        );
    }
}

fn an_unmigrated_database_says_to_migrate<B: TestBackend>() {
    let db = Db::<B>::empty();
    if B::NAME == "sqlite" {
        // An SQLite file that is not there is not created by a typo'd path...
        let line = db.run(&["status"]).error(1).to_owned();
        assert!(line.contains("there is no SQLite database at"), "{line}");
        assert!(line.contains("batchframework migrate"), "{line}");
        assert!(!std::path::Path::new(&db.database.url).exists());
        // ...but an existing file without the tables is told to migrate like a server.
        std::fs::write(&db.database.url, b"").unwrap();
    }
    for args in [
        &["status"][..],
        &["list"],
        &["show", "1"],
        &["prune", "--older-than", "30d"],
        &["pause", "default"],
    ] {
        let line = db.run(args).error(1).to_owned();
        assert!(
            line.contains("run `batchframework migrate`"),
            "{args:?}: {line}"
        );
    }
}

/// `s3cret` must appear nowhere in what the command printed.
#[track_caller]
fn assert_no_password(run: &Run) {
    assert!(
        !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
        "the password was printed:\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
}

/// A URL with a wrong password, for a database that does not exist, on `server`
/// (`host:port` of the test server, from the same variables the test support reads).
fn bad_url(scheme: &str, variable: &str, default_host: &str, user: &str) -> String {
    let server = std::env::var(variable).unwrap_or_default();
    let host = server
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split('/').next())
        .map(|authority| authority.rsplit_once('@').map_or(authority, |(_, h)| h))
        .filter(|h| !h.is_empty())
        .unwrap_or(default_host)
        .to_owned();
    format!("{scheme}://{user}:s3cret@{host}/nope")
}

/// The same checks on a server backend: a wrong password and a missing database fail with
/// one line that names the URL with its password redacted; an unreachable port likewise.
fn passwords_are_never_printed(url: &str, unreachable: &str) {
    for args in [
        &["status"][..],
        &["list", "--json"],
        &["migrate"],
        &["show", "1"],
    ] {
        let mut all = vec!["--database-url", url];
        all.extend_from_slice(args);
        let result = run(&all);
        let line = result.error(1);
        assert!(line.contains("cannot connect to"), "{line}");
        assert!(line.contains(":***@"), "{line}");
        assert_no_password(&result);
    }
    // From the environment too.
    let mut command = assert_cmd::Command::cargo_bin("batchframework").unwrap();
    let output = command
        .env("DATABASE_URL", url)
        .arg("status")
        .output()
        .unwrap();
    let result = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    result.error(1);
    assert_no_password(&result);

    let result = run(&["--database-url", unreachable, "status"]);
    result.error(1);
    assert_no_password(&result);
}

/// Per server backend, so the tests count with their backend.
mod server {
    #[cfg(feature = "postgres")]
    mod postgres {
        #[test]
        fn passwords_are_never_printed() {
            let url =
                super::super::bad_url("postgres", "PG_DATABASE_URL", "127.0.0.1:5432", "postgres");
            super::super::passwords_are_never_printed(
                &url,
                "postgres://postgres:s3cret@127.0.0.1:1/nope",
            );
        }
    }

    #[cfg(feature = "mysql")]
    mod mysql {
        #[test]
        fn passwords_are_never_printed() {
            let url =
                super::super::bad_url("mysql", "MYSQL_DATABASE_URL", "127.0.0.1:3306", "root");
            super::super::passwords_are_never_printed(&url, "mysql://root:s3cret@127.0.0.1:1/nope");
        }
    }
}
