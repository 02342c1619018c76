//! What needs no database: `tracking-sql`, the help, and command lines refused before any
//! connection.

use crate::support::run;

#[test]
fn tracking_sql_for_each_backend() {
    let postgres = run(&["tracking-sql", "players", "--backend", "postgres"]);
    insta::assert_snapshot!("tracking_sql_postgres", postgres.ok());
    let mysql = run(&["tracking-sql", "players", "--backend", "mysql"]);
    insta::assert_snapshot!("tracking_sql_mysql", mysql.ok());
    let sqlite = run(&["tracking-sql", "players", "--backend", "sqlite", "--json"]).json();
    assert_eq!(sqlite["table"], "players");
    assert_eq!(sqlite["backend"], "sqlite");
    assert!(sqlite["up"]
        .as_str()
        .unwrap()
        .starts_with("ALTER TABLE \"players\""));
    assert!(sqlite["down"].as_str().unwrap().contains("DROP COLUMN"));
}

#[test]
fn tracking_sql_takes_the_backend_from_the_url() {
    // The URL only names the dialect: nothing listens on this port, and no connection is made.
    let mysql = run(&[
        "--database-url",
        "mysql://root:s3cret@127.0.0.1:1/x",
        "tracking-sql",
        "players",
        "--json",
    ])
    .json();
    assert_eq!(mysql["backend"], "mysql");
    assert!(mysql["up"].as_str().unwrap().contains("`players`"));
    let sqlite = run(&[
        "--database-url",
        "app.sqlite3",
        "tracking-sql",
        "t",
        "--json",
    ])
    .json();
    assert_eq!(sqlite["backend"], "sqlite");
    let line = run(&["tracking-sql", "players"]).error(2).to_owned();
    assert!(line.contains("--backend"), "{line}");
}

#[test]
fn bad_table_names_are_usage_errors() {
    for name in ["players; DROP TABLE users", "public.players", "1st", ""] {
        let line = run(&["tracking-sql", name, "--backend", "postgres"])
            .error(2)
            .to_owned();
        assert!(
            line.contains("cannot be used as a table name"),
            "{name}: {line}"
        );
    }
}

#[test]
fn bad_durations_and_times_are_usage_errors() {
    let line = run(&["--database-url", "x.db", "prune", "--older-than", "3x"])
        .error(2)
        .to_owned();
    assert!(
        line.contains("invalid duration `3x`: unknown unit `x`"),
        "{line}"
    );
    assert!(line.contains("e.g. 30d, 12h, 15m, 90s, 500ms"), "{line}");
    let line = run(&[
        "--database-url",
        "x.db",
        "list",
        "--created-after",
        "yesterday",
    ])
    .error(2)
    .to_owned();
    assert!(line.contains("invalid time `yesterday`"), "{line}");
    run(&["--database-url", "x.db", "list", "--context", "games"]).error(2);
    run(&["--database-url", "x.db", "list", "--status", "sleeping"]).error(2);
    run(&["--database-url", "x.db", "prune"]).error(2);
    run(&["--database-url", "x.db", "list", "--limt", "3"]).error(2);
    run(&["--database-url", "x.db", "frobnicate"]).error(2);
    assert!(!std::path::Path::new("x.db").exists());
}

#[test]
fn malformed_urls_are_usage_errors_without_the_password() {
    for url in [
        "postgres://ann:s3cret@db:port/app",
        "redis://ann:s3cret@cache/0",
        "mysql://root:s3cret@[::1/x",
        "postgres://ann:s3cret@db/app name",
    ] {
        let result = run(&["--database-url", url, "status"]);
        let line = result.error(2).to_owned();
        assert!(line.contains("malformed database URL"), "{url}: {line}");
        assert!(!line.contains("s3cret"), "{line}");
    }
    // A URL where a subcommand belongs is echoed by the parser: redacted too.
    let result = run(&["postgres://ann:s3cret@db/app"]);
    let line = result.error(2).to_owned();
    assert!(!line.contains("s3cret"), "{line}");
}

#[test]
fn a_database_is_required() {
    let line = run(&["status"]).error(2).to_owned();
    assert!(line.contains("--database-url"), "{line}");
    assert!(line.contains("DATABASE_URL"), "{line}");
}

#[test]
fn a_missing_sqlite_file_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.sqlite3");
    let url = path.display().to_string();
    let line = run(&["--database-url", &url, "list"]).error(1).to_owned();
    assert!(line.contains("there is no SQLite database at"), "{line}");
    assert!(!path.exists());
    for url in [format!("sqlite://{url}"), url.clone()] {
        run(&["--database-url", &url, "status"]).error(1);
    }
}

#[test]
fn help_documents_every_json_shape() {
    let commands = [
        "migrate",
        "status",
        "list",
        "show",
        "retry",
        "cancel",
        "pause",
        "resume",
        "prune",
        "tracking-sql",
        "watch",
    ];
    for command in commands {
        let help = run(&["help", command]);
        assert!(help.ok().contains("JSON:"), "{command}: {}", help.stdout);
    }
    let help = run(&["--help"]);
    assert!(help.ok().contains("Exit codes"), "{}", help.stdout);
}

#[test]
fn help_never_shows_the_database_url() {
    let mut command = assert_cmd::Command::cargo_bin("batchframework").unwrap();
    let output = command
        .env("DATABASE_URL", "postgres://ann:s3cret@db/app")
        .arg("--help")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("DATABASE_URL"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
}
