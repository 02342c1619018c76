//! The subcommands, each written once for every backend: a generic function over
//! [`BatchConnection`] per command, reached through one backend dispatch
//! ([`DatabaseUrl::run`]).

mod list;
mod migrate;
mod operation;
mod prune;
mod queues;
mod serve;
mod show;
mod status;
mod tracking;
mod watch;

use batchframework_diesel::BatchConnection;

use crate::cli::{Cli, Command};
use crate::connect::{DatabaseUrl, OnConnection};
use crate::error::CliError;
use crate::output::{Format, Outcome};

/// Runs the command line's command.
pub(crate) fn run(cli: Cli) -> Result<Outcome, CliError> {
    let format = Format::detect(cli.json);
    let url = cli.database_url.as_deref().map(DatabaseUrl::parse);
    if let Command::TrackingSql { table, backend } = &cli.command {
        // Needs no connection: the URL, if any, only says which dialect.
        let backend =
            match (backend, url) {
                (Some(backend), _) => tracking::backend_of(*backend),
                (None, Some(url)) => url?.backend(),
                (None, None) => return Err(CliError::usage(
                    "say which SQL to write: pass --backend postgres|sqlite|mysql, or a database \
                     URL (--database-url or DATABASE_URL)",
                )),
            };
        return tracking::run(format, backend, table).map(Outcome::ok);
    }
    let url = url.ok_or_else(|| {
        CliError::usage("no database given: pass --database-url <URL> or set DATABASE_URL")
    })??;
    if let Command::Serve(args) = cli.command {
        return serve::run(&url, args);
    }
    let creating = matches!(cli.command, Command::Migrate);
    url.run(
        creating,
        Job {
            command: cli.command,
            format,
        },
    )
}

/// A command with its output format: what runs on the connection.
struct Job {
    command: Command,
    format: Format,
}

impl OnConnection for Job {
    type Output = Outcome;

    fn run<C: BatchConnection>(self, conn: &mut C) -> Result<Outcome, CliError> {
        let format = self.format;
        let text = match self.command {
            Command::Migrate => migrate::run(conn, format)?,
            Command::Status { limit } => status::run(conn, format, limit)?,
            Command::List(args) => list::run(conn, format, &args)?,
            Command::Show { id } => show::run(conn, format, id)?,
            Command::Retry(args) => operation::retry(conn, format, &args)?,
            Command::Cancel { id, by } => operation::cancel(conn, format, id, &by)?,
            Command::Pause { queue } => queues::pause(conn, format, &queue, true)?,
            Command::Resume { queue } => queues::pause(conn, format, &queue, false)?,
            Command::Prune(args) => prune::run(conn, format, &args)?,
            Command::Watch { id, interval } => return watch::run(conn, format, id, interval),
            Command::TrackingSql { .. } | Command::Serve(_) => {
                return Err(CliError::failed(
                    "internal error: tracking-sql and serve are run before connecting",
                ))
            }
        };
        Ok(Outcome::ok(text))
    }
}
