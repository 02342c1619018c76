//! The command line: one subcommand per verb, the database URL and `--json` global.
//!
//! Each subcommand's long help (`batchframework help <command>`) documents its `--json` shape,
//! which scripts may rely on: fields are only ever added.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::{parse_duration, parse_instant};

/// The operators' command line for batchframework: the queues at a glance, the operations,
/// and what to do about them.
#[derive(Debug, Parser)]
#[command(
    name = "batchframework",
    version,
    propagate_version = true,
    after_long_help = "\
The database URL chooses the backend: postgres:// or postgresql:// (PostgreSQL), mysql:// \
(MySQL/MariaDB), sqlite://<path>, file:<path> or a plain file path (SQLite). A password in the \
URL is never printed.

Exit codes: 0 success; 1 the command failed (unknown id, database unreachable or not migrated, a \
watched operation failed); 2 the command line was wrong (unknown flag, bad value, malformed URL)."
)]
pub(crate) struct Cli {
    /// The database: postgres://..., mysql://..., or an SQLite file.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) database_url: Option<String>,

    /// Print one JSON document instead of text (each command's help shows its shape).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or update the batchframework tables.
    ///
    /// Applies the embedded migrations that are not applied yet, and prints their versions.
    ///
    /// JSON: {"applied": ["<version>", ...]} (empty when none were pending).
    Migrate,

    /// The queues at a glance: waiting, running, finished and the lag, per queue.
    ///
    /// One row per queue with active or recent work: paused, due (waiting to run now), delayed
    /// (scheduled later, or in retry backoff), running, failed and succeeded in the last hour
    /// and day, lag (how long the oldest due operation has waited) and operations finished per
    /// minute over the last 5 and 60 minutes. Each count stops at --limit and shows as
    /// `<limit>+` beyond it. The table's total row count is the database's estimate.
    ///
    /// JSON: {"limit": 1000, "estimated_total": <int or null>, "queues": [{"queue": "default",
    /// "paused": false, "due": <count>, "delayed": <count>, "running": <count>,
    /// "failed": {"last_hour": <count>, "last_day": <count>}, "succeeded": {"last_hour": <count>,
    /// "last_day": <count>}, "oldest_due": "<RFC 3339>" or null, "lag_seconds": <float or null>,
    /// "finished_per_minute": {"5m": <float>, "60m": <float>}}]}, where <count> is
    /// {"value": <int>, "exact": <bool>} (exact false: at least that many).
    Status {
        /// Count at most this many operations per figure.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        limit: u64,
    },

    /// List operations, newest first, filtered.
    ///
    /// Prints at most --limit operations; when the page is full, the id to pass to --after-id
    /// for the next page.
    ///
    /// JSON: {"operations": [<operation>, ...], "next_after_id": <int or null>}, each
    /// <operation> as `show --json` prints it.
    List(ListArgs),

    /// Every field of one operation, its input and output JSON pretty-printed.
    ///
    /// For a batch's parent, how many of its children have finished; for a child, its batch.
    ///
    /// JSON: the operation: {"id", "created_datetime", "started_running_datetime",
    /// "finished_datetime", "context_object_type", "context_object_id", "started_by",
    /// "operation_type", "status", "result", "input_data", "output_data", "queue", "priority",
    /// "run_after", "attempts", "max_attempts", "locked_by", "heartbeat_datetime",
    /// "progress_done", "progress_total", "cancel_requested", "parent_id"}; timestamps RFC 3339
    /// in UTC or null, input_data and output_data JSON values or null, parent_id the batch's
    /// parent or null.
    Show {
        /// The operation's id.
        id: i64,
    },

    /// Queue a failed operation again, or every failed operation matching the filters.
    ///
    /// Only finished, failed operations are retried.
    ///
    /// JSON: with an id, the operation as `show --json` prints it; with --all-failed,
    /// {"retried": <int>}.
    Retry(RetryArgs),

    /// Cancel an operation: a pending one is finished (failed, recorded as cancelled), a running
    /// one is asked to stop.
    ///
    /// JSON: {"outcome": "cancelled" or "requested", "operation": <operation as `show --json`>}.
    Cancel {
        /// The operation's id.
        id: i64,
        /// Who cancelled it, recorded on the operation.
        #[arg(long, value_name = "NAME", default_value = "batchframework")]
        by: String,
    },

    /// Stop workers from claiming new operations of a queue (running ones finish).
    ///
    /// JSON: {"queue": "<name>", "paused": true}.
    Pause {
        /// The queue's name.
        queue: String,
    },

    /// Let workers claim a paused queue's operations again.
    ///
    /// JSON: {"queue": "<name>", "paused": false}.
    Resume {
        /// The queue's name.
        queue: String,
    },

    /// Delete old finished operations, in batches.
    ///
    /// Only finished operations that finished more than --older-than ago are deleted; pending
    /// and running ones stay however old they are. Rows of your tables that an operation
    /// created keep their data (their batchoperation_id becomes NULL).
    ///
    /// JSON: {"dry_run": <bool>, "finished_before": "<RFC 3339>", "count": <int>} (with
    /// --dry-run, how many would be deleted).
    Prune(PruneArgs),

    /// Print the SQL that adds (and removes) the batchoperation_id tracking column on a table.
    ///
    /// For your own migrations. The dialect comes from --backend, or else from the database
    /// URL's scheme; no connection is made.
    ///
    /// JSON: {"table": "<name>", "backend": "postgres" | "sqlite" | "mysql", "up": "<SQL>",
    /// "down": "<SQL>"}.
    TrackingSql {
        /// The table that gets the column.
        table: String,
        /// Whose SQL to write (default: the database URL's backend).
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },

    /// Serve the web dashboard: queues, operations and failures in the browser.
    ///
    /// The overview (one row per queue, finishes per minute over the last hour, the latest
    /// failures), the operations with every filter, each operation's input, output, actions and
    /// earlier attempts, and buttons to retry, cancel, pause, resume and prune. Also
    /// `/metrics` (Prometheus) and `/healthz`. Runs until Ctrl-C or SIGTERM.
    ///
    /// It binds to loopback by default. Any other address needs --token: the browser then asks
    /// for it once, and scripts send `Authorization: Bearer <token>`.
    Serve(ServeArgs),

    /// Follow an operation with a progress bar until it finishes, then print its result.
    ///
    /// Exits with 0 when it succeeded and 1 when it failed. The bar shows the progress the
    /// operation reports (a spinner when it reports no total) and is drawn only on a terminal.
    ///
    /// JSON: no bar; the finished operation as `show --json` prints it.
    Watch {
        /// The operation's id.
        id: i64,
        /// How often to look.
        #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
        interval: std::time::Duration,
    },
}

/// `serve`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS:PORT")]
    pub(crate) bind: std::net::SocketAddr,
    /// Ask every request for this token (needed to bind an address other than loopback).
    #[arg(
        long,
        env = "BATCHFRAMEWORK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// Show everything, change nothing: no buttons, every POST refused.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// The name in the pages' header.
    #[arg(long, default_value = "Batch operations")]
    pub(crate) title: String,
    /// Database connections the dashboard may hold at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) pool_size: u32,
}

/// The conditions `list` and `retry --all-failed` share.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only operations of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) operation_type: Option<String>,
    /// Only operations on this queue.
    #[arg(long, value_name = "QUEUE")]
    pub(crate) queue: Option<String>,
    /// Only operations about this object, as <type key>:<id>, e.g. games:7.
    #[arg(long, value_name = "TYPE:ID", value_parser = parse_context)]
    pub(crate) context: Option<(String, String)>,
    /// Only operations started by this user key.
    #[arg(long, value_name = "USER")]
    pub(crate) started_by: Option<String>,
    /// Only operations created after this time: RFC 3339, or how long ago (2h, 30d).
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub(crate) created_after: Option<DateTime<Utc>>,
    /// Only operations created before this time: RFC 3339, or how long ago (2h, 30d).
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub(crate) created_before: Option<DateTime<Utc>>,
}

/// `list`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Only operations in this status.
    #[arg(long, value_enum)]
    pub(crate) status: Option<StatusArg>,
    /// Only operations with this result.
    #[arg(long, value_enum)]
    pub(crate) result: Option<ResultArg>,
    /// At most this many operations.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub(crate) limit: u32,
    /// The next page: only operations older than this id (the id the previous page printed).
    #[arg(long, value_name = "ID")]
    pub(crate) after_id: Option<i64>,
}

/// `retry`'s arguments: one id, or every failed operation matching the filters.
#[derive(Debug, Clone, Args)]
pub(crate) struct RetryArgs {
    /// The operation's id.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub(crate) id: Option<i64>,
    /// Every failed operation that matches the filters (all of them without filters).
    #[arg(long)]
    pub(crate) all_failed: bool,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// `prune`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct PruneArgs {
    /// Delete operations that finished longer ago than this (30d, 12h, ...).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) older_than: std::time::Duration,
    /// Only operations of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) operation_type: Option<String>,
    /// Only operations with this result.
    #[arg(long, value_enum)]
    pub(crate) result: Option<FinishedResultArg>,
    /// At most this many operations per DELETE statement (default 10000).
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: Option<u32>,
    /// Count what would be deleted, and delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `--status`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Unprocessed,
    Running,
    Finished,
}

/// `--result` of `list`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ResultArg {
    NotAvailable,
    Successful,
    Failed,
}

/// `--result` of `prune`: a finished operation has one of these.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FinishedResultArg {
    Successful,
    Failed,
}

/// `--backend` of `tracking-sql`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    Postgres,
    Sqlite,
    Mysql,
}

/// `games:7` → (`games`, `7`); the id may itself contain `:`.
fn parse_context(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok((kind.to_owned(), id.to_owned()))
        }
        _ => Err(format!(
            "invalid context object `{text}`: expected <type key>:<id>, e.g. games:7"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contexts() {
        assert_eq!(
            parse_context("games:7"),
            Ok(("games".to_owned(), "7".to_owned()))
        );
        assert_eq!(
            parse_context("urn:a:b"),
            Ok(("urn".to_owned(), "a:b".to_owned()))
        );
        assert!(parse_context("games").is_err());
        assert!(parse_context(":7").is_err());
    }
}
