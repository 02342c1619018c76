//! Counting finished children into their batches, and completing a batch (see [`crate::batch`]):
//! the statements run inside the transaction that finishes the children (a keeper's group
//! commit, a finish by hand, an operator's cancel), so the counts and the children commit
//! together. Below the lifecycle, the operators' API and the workers, which all finish
//! operations; the batches' public API is built on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::batches::{BatchRow, MAX_FAILED_IDS};
use crate::backend::rows::{NewOperationRow, StatusChange};
use crate::backend::{now, retry_outside_transaction, BatchConnection, Storage, UtcDateTime};
use crate::dependencies;
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};
use diesel::QueryResult;
use serde_json::json;

/// The context object type of a batch's callbacks: the parent operation's table.
pub const PARENT_CONTEXT_TYPE: &str = "batchframework_batchoperation";

/// What a completed batch's parent holds as output, and its callbacks receive as input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// The parent operation's id.
    pub batch_id: i64,
    /// Children the batch was created with.
    pub total: i64,
    /// Children finished `successful`.
    pub succeeded: i64,
    /// Children finished `failed`, cancelled ones included.
    pub failed: i64,
    /// The failed children's ids, in id order: the first 10,000.
    pub failed_ids: Vec<i64>,
    /// Whether more children failed than `failed_ids` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_ids_truncated: bool,
    /// Why the batch was cancelled, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<String>,
}

/// When a callback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum When {
    /// Every child succeeded.
    Success,
    /// Every child finished.
    Complete,
}

/// A callback as the batch's row keeps it: what to enqueue, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Callback {
    pub(crate) when: When,
    pub(crate) operation_type: String,
    pub(crate) queue: String,
    pub(crate) max_attempts: i32,
}

/// Children finished in one transaction, per batch.
#[derive(Debug, Default)]
pub(crate) struct Tally(BTreeMap<i64, Finished>);

/// A batch's children finished in one transaction.
#[derive(Debug, Default)]
struct Finished {
    succeeded: i64,
    failed: i64,
    /// Each child and its result: a workflow's steps release their dependents.
    children: Vec<(i64, OperationResult)>,
}

impl Tally {
    /// Child `child` of `parent` finished with `result`.
    pub(crate) fn add(&mut self, parent: i64, child: i64, result: OperationResult) {
        let finished = self.0.entry(parent).or_default();
        match result {
            OperationResult::Successful => finished.succeeded += 1,
            OperationResult::Failed => finished.failed += 1,
            OperationResult::NotAvailable => {}
        }
        finished.children.push((child, result));
    }

    /// Adds the tally to the batches' counts, in the caller's transaction: one statement for
    /// all of them on PostgreSQL, one per batch elsewhere, in parent id order (so that
    /// concurrent transactions lock the counts rows in the same order). In a workflow, the
    /// finished steps then settle their dependents (see [`dependencies`]); the steps that
    /// settling cancels are counted in turn. Each batch whose counts reach its total is
    /// completed; a completed batch that is itself a child is counted into its own parent in
    /// turn.
    pub(crate) fn count<S: Storage + ?Sized>(self, storage: &mut S) -> QueryResult<Counted> {
        let mut counted = Counted::default();
        let mut tally = self;
        while !tally.0.is_empty() {
            let counts: Vec<(i64, i64, i64)> = tally
                .0
                .iter()
                .map(|(parent, done)| (*parent, done.succeeded, done.failed))
                .collect();
            let mut rows = storage.add_to_batches(&counts)?;
            rows.sort_by_key(|row| row.operation_id);
            let mut next = Tally::default();
            for row in rows.iter().filter(|row| row.workflow) {
                let Some(done) = tally.0.get(&row.operation_id) else {
                    continue;
                };
                let settled = dependencies::settle(storage, &done.children)?;
                counted.released += settled.released;
                for step in settled.cancelled {
                    next.add(row.operation_id, step, OperationResult::Failed);
                }
            }
            for row in rows
                .iter()
                .filter(|row| row.succeeded + row.failed >= row.total)
            {
                if let Some(done) = complete(storage, row, None)? {
                    counted.completed.push(row.operation_id);
                    if let Some(grandparent) = done.parent {
                        next.add(grandparent, row.operation_id, done.result);
                    }
                }
            }
            tally = next;
        }
        Ok(counted)
    }
}

/// What [`Tally::count`] did besides counting.
#[derive(Debug, Default)]
pub(crate) struct Counted {
    /// The parents of the batches it completed (each enqueued its callbacks).
    pub(crate) completed: Vec<i64>,
    /// Workflow steps it released: due now.
    pub(crate) released: usize,
}

/// A batch this transaction completed.
pub(crate) struct Completed {
    /// The batch's own parent, when it is a sub-batch.
    pub(crate) parent: Option<i64>,
    pub(crate) result: OperationResult,
}

/// Completes a batch that has no children, as it is created.
pub(crate) fn complete_empty<S: Storage + ?Sized>(storage: &mut S, parent: i64) -> QueryResult<()> {
    let mut tally = Tally::default();
    if let Some(row) = storage.find_batch(parent)? {
        if let Some(done) = complete(storage, &row, None)? {
            if let Some(grandparent) = done.parent {
                tally.add(grandparent, parent, done.result);
            }
        }
    }
    tally.count(storage).map(|_| ())
}

/// Finishes the parent of the batch `row` with the summary, and enqueues the callbacks that
/// apply, if the parent is still `running`: the guarded `UPDATE ... WHERE status = 'running'`
/// lets one transaction do it, once. `None` when the parent was finished already.
pub(crate) fn complete<S: Storage + ?Sized>(
    storage: &mut S,
    row: &BatchRow,
    cancelled: Option<&str>,
) -> QueryResult<Option<Completed>> {
    let parent = row.operation_id;
    let Some(operation) = storage.find_operation(parent)? else {
        return Ok(None);
    };
    if operation.status() != Status::Running {
        return Ok(None);
    }
    let mut failed_ids = storage.failed_children(parent)?;
    let failed_ids_truncated = failed_ids.len() > MAX_FAILED_IDS;
    failed_ids.truncate(MAX_FAILED_IDS);
    let summary = BatchSummary {
        batch_id: parent,
        total: row.total,
        succeeded: row.succeeded,
        failed: row.failed,
        failed_ids,
        failed_ids_truncated,
        cancelled: cancelled.map(str::to_owned),
    };
    let result = if summary.failed == 0 && cancelled.is_none() {
        OperationResult::Successful
    } else {
        OperationResult::Failed
    };
    // A struct of numbers and strings always serializes.
    let output = serde_json::to_string(&summary).unwrap_or_default();
    let at = UtcDateTime(now());
    let change = StatusChange {
        status: Status::Finished,
        result: Some(result),
        started_running_datetime: None,
        finished_datetime: Some(at),
        output_data_json: Some(&output),
    };
    if storage.change_status(parent, Status::Running, &change)? != 1 {
        return Ok(None);
    }
    let parent_key = parent.to_string();
    for callback in callbacks(&row.callbacks_json) {
        if callback.when == When::Success && result != OperationResult::Successful {
            continue;
        }
        storage.insert_operation(&NewOperationRow {
            created_datetime: at,
            started_running_datetime: None,
            context_object_type: Some(PARENT_CONTEXT_TYPE),
            context_object_id: Some(&parent_key),
            started_by: operation.started_by(),
            operationtype: &callback.operation_type,
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            input_data_json: &output,
            output_data_json: "",
            queue: &callback.queue,
            priority: 0,
            run_after: None,
            max_attempts: callback.max_attempts,
            parent_id: None,
        })?;
    }
    Ok(Some(Completed {
        parent: operation.parent_id(),
        result,
    }))
}

/// The callbacks a counts row keeps. Callbacks that do not parse (a row written by hand)
/// enqueue nothing: the error is logged, and the batch still completes with its summary.
fn callbacks(json: &str) -> Vec<Callback> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::error!(%error, callbacks = json, "a batch's callbacks do not parse; none enqueued");
        Vec::new()
    })
}

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
    // Racing a worker's group commit that counts into the same batch, the transaction can be
    // the database's deadlock victim: it runs again, outside a caller's transaction.
    let outcome = retry_outside_transaction(conn, |conn| {
        conn.transaction(|conn| {
            let storage = conn.storage();
            let outcome = cancel_in(storage, id, reason)?;
            if let Cancel::Completed(Completed {
                parent: Some(grandparent),
                result,
            }) = &outcome
            {
                let mut tally = Tally::default();
                tally.add(*grandparent, id, *result);
                tally.count(storage)?;
            }
            Ok(outcome)
        })
    })?;
    match outcome {
        Cancel::NotABatch => Err(Error::NotABatch { id }),
        Cancel::Completed(_) => BatchOperation::find(conn, id),
        Cancel::AlreadyComplete => Err(Error::IllegalTransition {
            id,
            action: "cancel_batch",
            expected: Status::Running,
            actual: BatchOperation::find(conn, id)?.status(),
        }),
    }
}

/// What [`cancel_in`] found.
enum Cancel {
    NotABatch,
    AlreadyComplete,
    Completed(Completed),
}

/// Cancels batch `id` and its running sub-batches. Writes first (the children), so that on
/// SQLite the transaction takes the write lock at once, waiting its turn, instead of failing to
/// upgrade a read; a parent that is no batch has no children, and nothing changes.
fn cancel_in<S: Storage + ?Sized>(storage: &mut S, id: i64, reason: &str) -> QueryResult<Cancel> {
    let output = json!({ "cancelled": true, "reason": reason }).to_string();
    let pending = storage.cancel_pending_children(id, now(), &output)?;
    let mut failed = i64::try_from(pending).unwrap_or(i64::MAX);
    storage.request_cancel_children(id)?;
    for sub_batch in storage.running_sub_batches(id)? {
        if let Cancel::Completed(_) = cancel_in(storage, sub_batch, reason)? {
            failed += 1;
        }
    }
    let Some(row) = storage.add_to_batches(&[(id, 0, failed)])?.pop() else {
        return Ok(Cancel::NotABatch);
    };
    Ok(match complete(storage, &row, Some(reason))? {
        Some(done) => Cancel::Completed(done),
        None => Cancel::AlreadyComplete,
    })
}
