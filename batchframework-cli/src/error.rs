//! The command's one error type, and how the library's errors read to an operator.
//!
//! Every error ends the command with one line on stderr and an exit code: 2 when the command
//! line itself was wrong (what clap rejects, a bad duration or time, a malformed database URL, a
//! table name that is not an identifier), 1 when the command could not do what it was asked.

use std::fmt;

use batchframework_diesel::Error;

/// Exit code of a command that failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code of a command line that was wrong, as clap's own.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Why the command stopped.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    /// The command line was wrong (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The command could not do what it was asked (exit code 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }

    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        match error {
            // The library's message tells a program to call `run_migrations`; an operator runs
            // the command instead.
            Error::NotMigrated { source } => CliError::failed(format!(
                "the batchframework tables are missing or out of date in this database ({source}); \
                 run `batchframework migrate`"
            )),
            Error::NotFound { id } => {
                CliError::failed(format!("there is no batch operation with id {id}"))
            }
            Error::IllegalTransition {
                id,
                action,
                expected,
                actual,
            } => CliError::failed(format!(
                "cannot {action} batch operation {id}: it is `{actual}`, and {action} needs it to \
                 be `{expected}`; `batchframework show {id}` shows its state"
            )),
            error @ Error::InvalidIdentifier { .. } => CliError::usage(error.to_string()),
            other => CliError::failed(other.to_string()),
        }
    }
}
