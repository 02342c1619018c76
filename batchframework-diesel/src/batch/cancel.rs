//! Cancelling a whole batch.

use serde_json::json;

use crate::backend::{now, BatchConnection, Storage};
use crate::completion::{complete, Completed, Tally};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::Status;
use diesel::QueryResult;

/// Cancels the batch whose parent operation is `id`, for `reason` (kept in the outputs), in one
/// transaction: its pending children are finished `failed` with `{"cancelled": true, "reason":
/// <reason>}` and never start; its running children get a cancel request (their actions see it
/// through `ActionContext::is_cancel_requested`); running sub-batches are cancelled the same way;
/// the parent is finished `failed`, its summary saying why, and the `on_complete` callbacks are
/// enqueued. Children still running finish as they will, and are still counted; nothing runs
/// twice, since the parent is finished once.
///
/// Returns the parent as finished.
///
/// # Errors
///
/// [`Error::NotABatch`] when `id` is no batch's parent; [`Error::IllegalTransition`] when the
/// batch has already completed.
pub fn cancel_batch<C: BatchConnection>(
    conn: &mut C,
    id: i64,
    reason: &str,
) -> Result<BatchOperation> {
    conn.transaction(|conn| {
        let storage = conn.storage();
        if storage.find_batch(id)?.is_none() {
            return Err(Error::NotABatch { id });
        }
        let Some(done) = cancel_in(storage, id, reason)? else {
            let current = BatchOperation::find(conn, id)?;
            return Err(Error::IllegalTransition {
                id,
                action: "cancel_batch",
                expected: Status::Running,
                actual: current.status(),
            });
        };
        if let Some(grandparent) = done.parent {
            let mut tally = Tally::default();
            tally.add(grandparent, done.result);
            tally.count(conn.storage())?;
        }
        BatchOperation::find(conn, id)
    })
}

/// Cancels batch `id` and its running sub-batches; `None` if it had completed already.
fn cancel_in<S: Storage + ?Sized>(
    storage: &mut S,
    id: i64,
    reason: &str,
) -> QueryResult<Option<Completed>> {
    let output = json!({ "cancelled": true, "reason": reason }).to_string();
    let mut failed =
        i64::try_from(storage.cancel_pending_children(id, now(), &output)?).unwrap_or(i64::MAX);
    storage.request_cancel_children(id)?;
    for sub_batch in storage.running_sub_batches(id)? {
        if cancel_in(storage, sub_batch, reason)?.is_some() {
            failed += 1;
        }
    }
    let Some(row) = storage.add_to_batches(&[(id, 0, failed)])?.pop() else {
        return Ok(None);
    };
    complete(storage, &row, Some(reason))
}
