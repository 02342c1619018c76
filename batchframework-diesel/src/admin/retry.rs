//! Queuing failed operations again.

use serde_json::{json, Value};

use crate::attempts::{attempts_so_far, PREVIOUS_ATTEMPTS};
use crate::backend::rows::Requeue;
use crate::backend::{BatchConnection, Storage};
use crate::error::{Error, Result};
use crate::filter::OperationFilter;
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

/// How many failed operations [`retry_failed`] reads at a time.
const RETRY_BATCH: u32 = 500;

/// Queues a failed operation again: pending and due now, its attempts counted afresh (a worker
/// may start it `max_attempts` times again), progress and cancel request cleared, and what its
/// attempts stored kept in its output under `previous_attempts` (the worker adds its next
/// result to that list). Returns the operation as it now is.
///
/// One guarded `UPDATE`: it applies only while the operation is the very failure that was read
/// (status `finished`, result `failed`, same finish time), so two operators retrying at once
/// queue it once, and a retry never overwrites a later attempt's output.
///
/// # Errors
///
/// [`Error::NotFound`]; [`Error::IllegalTransition`] if the operation is not finished;
/// [`Error::NotFailed`] if it finished successfully; [`Error::PartOfABatch`] for a batch's child
/// or parent (its batch has counted it); [`Error::Conflict`] if it changed between the read and
/// the update (read it again and decide).
pub fn retry<C: BatchConnection>(conn: &mut C, id: i64) -> Result<BatchOperation> {
    let operation = BatchOperation::find(conn, id)?;
    requeue(conn, &operation)?;
    BatchOperation::find(conn, id)
}

/// Queues again every failed operation matching `filter` (its status and result conditions are
/// replaced by finished and failed, its order and `after_id` are ignored, and its limit, if
/// any, caps how many), reading them 500 at a time by id; returns how many were queued. One
/// that changed meanwhile (a concurrent retry) is skipped, and so are batches' children and
/// parents (see [`retry`]).
///
/// # Errors
///
/// As for [`OperationFilter::load`]; a batch's earlier retries stay applied.
pub fn retry_failed<C: BatchConnection>(conn: &mut C, filter: &OperationFilter) -> Result<u64> {
    let mut retried = 0_u64;
    let mut after = None;
    let cap = filter.limit.map(u64::from);
    loop {
        let room = cap.map_or(u64::from(RETRY_BATCH), |cap| {
            cap.saturating_sub(retried).min(u64::from(RETRY_BATCH))
        });
        if room == 0 {
            return Ok(retried);
        }
        let mut page = OperationFilter {
            after_id: None,
            ..filter.clone()
        }
        .status(Status::Finished)
        .result(OperationResult::Failed)
        .order_by(crate::filter::OperationOrder::IdAscending)
        .limit(u32::try_from(room).unwrap_or(RETRY_BATCH));
        if let Some(id) = after {
            page = page.after_id(id);
        }
        let failed = page.load(conn)?;
        let Some(last) = failed.last() else {
            return Ok(retried);
        };
        after = Some(last.id());
        for operation in &failed {
            match requeue(conn, operation) {
                Ok(()) => retried += 1,
                Err(Error::Conflict { .. } | Error::PartOfABatch { .. }) => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// The guarded requeue of `operation` as read.
fn requeue<C: BatchConnection>(conn: &mut C, operation: &BatchOperation) -> Result<()> {
    let id = operation.id();
    if operation.status() != Status::Finished {
        return Err(Error::IllegalTransition {
            id,
            action: "retry",
            expected: Status::Finished,
            actual: operation.status(),
        });
    }
    if operation.result() != OperationResult::Failed {
        return Err(Error::NotFailed { id });
    }
    // Its batch has counted it (a child) or completed on its count (a parent).
    if operation.parent_id().is_some() || conn.storage().find_batch(id)?.is_some() {
        return Err(Error::PartOfABatch { id });
    }
    let finished_at = operation.finished_datetime().ok_or(Error::Internal(
        "a finished operation without a finish time",
    ))?;
    let output =
        json!({ PREVIOUS_ATTEMPTS: Value::Array(attempts_so_far(operation.output_data_json())) })
            .to_string();
    let changed = conn
        .storage()
        .requeue_failed(id, finished_at, &Requeue::with_output(&output))?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict {
            id,
            action: "retry",
            expected: Status::Finished,
        })
    }
}
