//! `batchframework`: the operators' command line for `batchframework-diesel`, on PostgreSQL,
//! SQLite and MySQL/MariaDB.
//!
//! This file owns the process: parsing the command line, running the command, and turning
//! every failure into one `error: ...` line on stderr and an exit code, with any password of
//! the database URL redacted. Nothing below it prints errors or exits.
//!
//! Features: `sqlite` (default, the bundled SQLite), `postgres` (needs libpq), `mysql` (needs
//! libmysqlclient or libmariadb); a URL of a backend not built in says which feature to enable.

#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]
// The doc comments of `cli.rs` are the `--help` text clap prints, where `<ID>`-style
// placeholders are the convention; rustdoc would read them as HTML tags.
#![allow(rustdoc::invalid_html_tags)]
// Built with no backend (`--no-default-features`), only `tracking-sql` can run: the commands
// that need a connection are compiled but never reached.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]

mod cli;
mod commands;
mod connect;
mod duration;
mod error;
mod output;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::Cli;
use crate::connect::Redactor;
use crate::error::EXIT_USAGE;

fn main() -> ExitCode {
    // The URL's password is hidden in every message, also those of the command-line parser
    // (which may echo a URL given where a subcommand was expected).
    let env_url = std::env::var("DATABASE_URL").ok();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let redactor = Redactor::for_url(env_url.as_deref().unwrap_or_default());
            return clap_error(&error, &redactor);
        }
    };
    let redactor = Redactor::for_url(cli.database_url.as_deref().unwrap_or_default());
    match commands::run(cli) {
        Ok(outcome) => {
            write_stdout(&outcome.stdout);
            ExitCode::from(outcome.exit_code)
        }
        Err(error) => {
            print_error(&redactor.redact(&error.to_string()));
            ExitCode::from(error.code())
        }
    }
}

/// Help and version go out as clap prints them; a usage error becomes one line.
fn clap_error(error: &clap::Error, redactor: &Redactor) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Printing help fails only when stdout is closed, and then nobody reads it.
        let _ = error.print();
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_USAGE));
    }
    let rendered = error.render().to_string();
    let message = one_line(&rendered);
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    print_error(&redactor.redact(message));
    ExitCode::from(EXIT_USAGE)
}

/// Clap's message without its usage section, its lines joined: `error: the following
/// required arguments were not provided: --older-than <DURATION>`.
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

/// `error: <message>` on stderr, on one line whatever the message holds.
fn print_error(message: &str) {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let label = if std::io::stderr().is_terminal() && !no_color {
        "\x1b[1;31merror:\x1b[0m"
    } else {
        "error:"
    };
    // Nothing more can be reported if stderr itself is closed.
    let _ = writeln!(std::io::stderr().lock(), "{label} {message}");
}

/// Writes the command's output; a reader that went away (`| head`) is not an error.
fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        --older-than <DURATION>\n\nUsage: batchframework prune --older-than \
                        <DURATION>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --older-than <DURATION>"
        );
        let rendered = "error: unexpected argument '--limt' found\n\n  tip: a similar argument \
                        exists: '--limit'\n\nUsage: x\n";
        assert_eq!(
            one_line(rendered),
            "error: unexpected argument '--limt' found; tip: a similar argument exists: '--limit'"
        );
    }
}
