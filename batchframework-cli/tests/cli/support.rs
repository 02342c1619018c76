//! Running the binary: a throwaway database per test (from the workspace's test support), the
//! command with a clean environment, and its output checked for the one-line error contract.

use std::process::Output;

use batchframework_tests::{TestBackend, TestDatabase};

/// A finished run of the command.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stderr.is_empty(), "stderr: {}", self.stderr);
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Asserts the error contract: exit `code`, nothing on stdout, one `error: ` line on
    /// stderr; returns that line.
    #[track_caller]
    pub(crate) fn error(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "stdout of a failed command");
        let line = self
            .stderr
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("stderr does not end in a newline: {:?}", self.stderr));
        assert!(
            !line.contains('\n'),
            "more than one line: {:?}",
            self.stderr
        );
        assert!(line.starts_with("error: "), "{line}");
        assert!(!line.contains("panicked"), "{line}");
        line
    }
}

/// Runs the binary with `args` and `DATABASE_URL` unset (a URL goes in the args).
pub(crate) fn run(args: &[&str]) -> Run {
    let mut command = assert_cmd::Command::cargo_bin("batchframework").expect("the binary");
    command
        .env_remove("DATABASE_URL")
        .env_remove("NO_COLOR")
        .env_remove("RUST_BACKTRACE")
        .args(args);
    Run::from(command.output().expect("run the binary"))
}

/// A throwaway database and the command pointed at it.
pub(crate) struct Db<B: TestBackend> {
    pub(crate) database: TestDatabase,
    _backend: std::marker::PhantomData<B>,
}

impl<B: TestBackend> Db<B> {
    /// An empty database: no tables.
    pub(crate) fn empty() -> Self {
        Db {
            database: B::create_database(),
            _backend: std::marker::PhantomData,
        }
    }

    /// A database the command migrated.
    pub(crate) fn migrated() -> Self {
        let db = Self::empty();
        db.run(&["migrate"]).ok();
        db
    }

    /// A connection of the test's own, to set up operations with the library.
    pub(crate) fn connect(&self) -> B::Connection {
        B::connect(&self.database)
    }

    /// Runs the command on this database, the URL given by `DATABASE_URL`.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let mut command = assert_cmd::Command::cargo_bin("batchframework").expect("the binary");
        command
            .env("DATABASE_URL", &self.database.url)
            .env_remove("NO_COLOR")
            .env_remove("RUST_BACKTRACE")
            .args(args);
        Run::from(command.output().expect("run the binary"))
    }
}

/// Pins human output with insta, timestamps and durations that change from run to run
/// replaced. The snapshot is shared by every backend: the output must be the same on each.
macro_rules! assert_human_snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "0000-00-00T00:00:00Z"),
                (r"operations in the table: .*", "operations in the table: [estimate]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}
pub(crate) use assert_human_snapshot;
