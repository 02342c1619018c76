//! `prune`: delete old finished operations, or count them with `--dry-run`.

use batchframework_diesel::{BatchConnection, OperationFilter, OperationResult, Prune, Status};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::{FinishedResultArg, PruneArgs};
use crate::duration::to_chrono;
use crate::error::CliError;
use crate::output::{format_time, json, Format};

/// `{"dry_run", "finished_before", "count"}`.
#[derive(Serialize)]
struct Pruned {
    dry_run: bool,
    finished_before: DateTime<Utc>,
    count: u64,
}

/// Deletes (or counts) what `--older-than`, `--type` and `--result` select.
pub(super) fn run<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    args: &PruneArgs,
) -> Result<String, CliError> {
    let before = Utc::now()
        .checked_sub_signed(to_chrono(args.older_than))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let result = args.result.map(|result| match result {
        FinishedResultArg::Successful => OperationResult::Successful,
        FinishedResultArg::Failed => OperationResult::Failed,
    });
    let count = if args.dry_run {
        // What `Prune` deletes, counted: finished, finished before the instant.
        let mut filter = OperationFilter::new()
            .status(Status::Finished)
            .finished_before(before);
        if let Some(operation_type) = &args.operation_type {
            filter = filter.operation_type(operation_type.clone());
        }
        if let Some(result) = result {
            filter = filter.result(result);
        }
        u64::try_from(filter.count(conn)?).unwrap_or(0)
    } else {
        let mut prune = Prune::finished_before(before);
        if let Some(operation_type) = &args.operation_type {
            prune = prune.operation_type(operation_type.clone());
        }
        if let Some(result) = result {
            prune = prune.result(result);
        }
        if let Some(batch_size) = args.batch_size {
            prune = prune.batch_size(batch_size);
        }
        prune.run(conn)?
    };
    if format.json {
        return json(&Pruned {
            dry_run: args.dry_run,
            finished_before: before,
            count,
        });
    }
    let what = format!(
        "finished operation{} (finished before {})",
        if count == 1 { "" } else { "s" },
        format_time(before)
    );
    Ok(if args.dry_run {
        format!("would delete {count} {what}; nothing was deleted (--dry-run)\n")
    } else {
        format!("deleted {count} {what}\n")
    })
}
