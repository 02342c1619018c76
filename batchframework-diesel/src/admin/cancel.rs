//! Cancelling pending or running operations.

use serde_json::json;

use crate::backend::retry_outside_transaction;
use crate::backend::rows::StatusChange;
use crate::backend::{now, BatchConnection, Storage, UtcDateTime};
use crate::completion::{cancel_batch, Tally};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

/// How often [`cancel`] tries again when the operation moved between pending and running under
/// it (a worker claimed it, or released it for a retry).
const ATTEMPTS: usize = 3;

/// What [`cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// It was pending: it is now finished, `failed`, with output `{"cancelled": true, "by":
    /// <by>}`, and no worker will start it. The record stays (unlike
    /// [`OperationFilter::remove_pending`](crate::OperationFilter::remove_pending)).
    Finished(BatchOperation),
    /// It was running: its cancel request is recorded; the action sees it through
    /// `ActionContext::is_cancel_requested` and decides how to stop.
    Requested(BatchOperation),
}

/// Cancels operation `id` on behalf of `by` (an operator's name, kept in the output).
///
/// A pending operation is finished as failed by one `UPDATE` guarded by its status, so against
/// a worker claiming it at the same moment exactly one wins: either it is cancelled and never
/// starts, or it runs and gets a cancel request instead.
///
/// A batch's parent is cancelled with its batch ([`batch::cancel_batch`](crate::batch::cancel_batch),
/// the reason `cancelled by <by>`); a batch's pending child is counted in its batch as failed.
///
/// # Errors
///
/// [`Error::NotFound`]; [`Error::IllegalTransition`] if it already finished.
pub fn cancel<C: BatchConnection>(conn: &mut C, id: i64, by: &str) -> Result<Cancelled> {
    // A batch's parent runs no action of its own: cancelling it cancels its batch.
    if conn.storage().find_batch(id)?.is_some() {
        let reason = format!("cancelled by {by}");
        return Ok(Cancelled::Finished(cancel_batch(conn, id, &reason)?));
    }
    let output = json!({ "cancelled": true, "by": by }).to_string();
    for _ in 0..ATTEMPTS {
        let at = UtcDateTime(now());
        let change = StatusChange {
            status: Status::Finished,
            result: Some(OperationResult::Failed),
            // It never ran; the table requires a start time for every finished operation.
            started_running_datetime: Some(at),
            finished_datetime: Some(at),
            output_data_json: Some(&output),
        };
        // A batch's child is counted in its batch in the same transaction (see `batch`). On
        // MySQL/MariaDB a claim of the same row can make this InnoDB's deadlock victim: it runs
        // again, outside a caller's transaction.
        let cancelled = retry_outside_transaction(conn, |conn| {
            conn.transaction(|conn| {
                if conn.storage().cancel_pending(id, &change)? != 1 {
                    return Ok(None);
                }
                let operation = conn.storage().find_operation(id)?;
                if let Some(parent) = operation.as_ref().and_then(BatchOperation::parent_id) {
                    let mut tally = Tally::default();
                    tally.add(parent, id, OperationResult::Failed);
                    tally.count(conn.storage())?;
                }
                Ok(operation)
            })
        })?;
        // Read in the transaction that cancelled it: as cancelled, and counted in its batch.
        if let Some(operation) = cancelled {
            return Ok(Cancelled::Finished(operation));
        }
        if conn.storage().request_cancel(id)? == 1 {
            return Ok(Cancelled::Requested(BatchOperation::find(conn, id)?));
        }
        let current = BatchOperation::find(conn, id)?;
        if current.status() == Status::Finished {
            return Err(Error::IllegalTransition {
                id,
                action: "cancel",
                expected: Status::Unprocessed,
                actual: Status::Finished,
            });
        }
    }
    Err(Error::Conflict {
        id,
        action: "cancel",
        expected: Status::Unprocessed,
    })
}
