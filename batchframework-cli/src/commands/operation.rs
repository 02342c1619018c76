//! `retry` and `cancel`: an operator's actions on operations.

use batchframework_diesel::admin::{self, Cancelled};
use batchframework_diesel::{BatchConnection, BatchOperation};
use serde::Serialize;

use crate::cli::RetryArgs;
use crate::error::CliError;
use crate::output::{json, Format};

use super::list::filter_of;

/// `{"retried": n}`.
#[derive(Serialize)]
struct Retried {
    retried: u64,
}

/// `{"outcome", "operation"}`.
#[derive(Serialize)]
struct CancelOutcome<'a> {
    outcome: &'static str,
    operation: &'a BatchOperation,
}

/// Queues one failed operation again, or every failed one the filters select.
pub(super) fn retry<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    args: &RetryArgs,
) -> Result<String, CliError> {
    match args.id {
        Some(id) => {
            let op = admin::retry(conn, id)?;
            if format.json {
                return json(&op);
            }
            Ok(format!(
                "queued {} #{} again on queue `{}`, with {} attempts\n",
                op.operation_type(),
                op.id(),
                op.queue(),
                op.max_attempts()
            ))
        }
        None => {
            // `retry_failed` selects the failed operations among those the filter matches.
            let retried = admin::retry_failed(conn, &filter_of(&args.filter))?;
            if format.json {
                return json(&Retried { retried });
            }
            Ok(format!(
                "queued {retried} failed operation{} again\n",
                if retried == 1 { "" } else { "s" }
            ))
        }
    }
}

/// Cancels an operation: finished as cancelled when it had not started, asked to stop when
/// running.
pub(super) fn cancel<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    id: i64,
    by: &str,
) -> Result<String, CliError> {
    let (outcome, op) = match admin::cancel(conn, id, by)? {
        Cancelled::Finished(op) => ("cancelled", op),
        Cancelled::Requested(op) => ("requested", op),
    };
    if format.json {
        return json(&CancelOutcome {
            outcome,
            operation: &op,
        });
    }
    Ok(if outcome == "cancelled" {
        format!(
            "cancelled {} #{}: it had not started, and is now finished as failed, its output \
             recording the cancel by {by}\n",
            op.operation_type(),
            op.id()
        )
    } else {
        format!(
            "asked {} #{} to stop: it is running, and its action sees the cancel request \
             (`batchframework watch {}` follows it)\n",
            op.operation_type(),
            op.id(),
            op.id()
        )
    })
}
