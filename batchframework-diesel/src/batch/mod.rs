//! Batches: a parent operation that fans out into child operations, knows when every child has
//! finished, and then enqueues its callbacks, exactly once.
//!
//! [`Registry::batch`](crate::registry::Registry::batch) records the parent (`running`, with
//! the batch's type, context object and input) and its children (ordinary `unprocessed`
//! operations of any registered group, each pointing at the parent through `parent_id`) in one
//! transaction: one `COPY` on PostgreSQL, multi-row `INSERT`s elsewhere, so a batch of 100,000
//! children is enqueued at bulk speed. Workers run the children like any other operation.
//!
//! ```
//! use batchframework_diesel::batch::{BatchSummary, Child};
//! use batchframework_diesel::registry::{ActionGroup, Registry, RunArgs};
//! use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Status};
//! use diesel::{Connection, SqliteConnection};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry: Registry<SqliteConnection> = Registry::builder()
//!     .group_with("import-file", |g| g.asynchronous().action_fn("read", |_| Ok(().into())))
//!     .group_with("import-done", |g| g.asynchronous().action_fn("mail", |_| Ok(().into())))
//!     .build()?;
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//!
//! let files = ["a.csv", "b.csv", "c.csv"];
//! let mut parent = registry
//!     .batch("import-users")
//!     .on_complete("import-done")
//!     .enqueue(
//!         &mut conn,
//!         files.iter().map(|f| Child::new("import-file", RunArgs::new().input(f))),
//!     )?;
//! let progress = BatchOperation::batch_progress(&mut conn, parent.id())?;
//! assert_eq!((progress.total, progress.finished()), (3, 0));
//!
//! // A worker would run the children; here they are finished by hand.
//! for mut child in OperationFilter::new().parent(parent.id()).load(&mut conn)? {
//!     child.mark_as_running(&mut conn)?;
//!     child.finish(&mut conn)?;
//! }
//! parent.reload(&mut conn)?;
//! assert_eq!(parent.result(), OperationResult::Successful);
//! let summary: BatchSummary = parent.output_data()?.expect("a summary");
//! assert_eq!((summary.succeeded, summary.failed), (3, 0));
//!
//! // The callback is an ordinary operation for a worker, about the parent.
//! let callbacks = OperationFilter::new().operation_type("import-done").load(&mut conn)?;
//! assert_eq!(callbacks.len(), 1);
//! assert_eq!(callbacks[0].context_object_id(), Some(parent.id().to_string().as_str()));
//! # Ok(())
//! # }
//! ```
//!
//! # Counting
//!
//! The batch's counts (`total`, `succeeded`, `failed`) live in a narrow row of their own, in
//! `batchframework_batch`. A worker's keeper writes finished results in groups, one transaction
//! per group ([`Worker`](crate::worker::Worker)'s group commit); that same transaction adds the
//! group's children to their batches' counts, after the children's own rows: once per batch per
//! group, not per child (on PostgreSQL one statement for all the batches of the group, on the
//! other backends one `UPDATE` per batch). So the counts and the children can never disagree,
//! whatever crashes: both commit or neither does. A child finished by other means (by hand with
//! [`BatchOperation::finish`], cancelled with [`admin::cancel`](crate::admin::cancel)) is counted
//! in the transaction that finishes it, the same way.
//!
//! The counts row is locked from that `UPDATE` until the group's commit, so group commits of
//! several workers that touch the same batch take turns on it for the length of a commit. Worker
//! threads never touch it: they hand results to their keeper and go on running children. With
//! one keeper per worker process and groups of hundreds of results, a batch's row sees a few
//! updates per second per process, whatever the number of threads.
//!
//! A child that fails and will be retried by its worker is not finished: it counts once, when its
//! last attempt ends. Once counted, a child cannot be retried on its own
//! ([`admin::retry`](crate::admin::retry) refuses it with [`Error::PartOfABatch`]), and
//! [`OperationFilter::remove_pending`](crate::OperationFilter::remove_pending) leaves a batch's
//! children alone: either would take a child away from its batch's count.
//!
//! A parent is finished by its batch. Finished by hand ([`BatchOperation::finish`] and the
//! like), it enqueues no callbacks: cancel a batch with [`cancel_batch`] instead
//! ([`admin::cancel`](crate::admin::cancel) of a parent does).
//!
//! # Completion, exactly once
//!
//! The transaction whose `UPDATE` brings `succeeded + failed` to `total` (the counts row is
//! locked, so exactly one transaction sees that) finishes the parent with one guarded
//! `UPDATE ... WHERE id = ? AND status = 'running'`, and only if that changed the row, enqueues
//! the callbacks, in the same transaction:
//!
//! * `on_success` groups when every child succeeded;
//! * `on_complete` groups when every child has finished, whatever the results.
//!
//! Each callback is an ordinary operation of its group, about the parent (context object
//! `batchframework_batchoperation` / the parent's id), with the [`BatchSummary`] as input. The
//! parent is finished `successful` if every child succeeded and `failed` otherwise, with the
//! summary as output. A crash before the commit leaves the children running: they are taken over
//! when their lease expires, and the transaction that finally writes them does all of this. Two
//! transactions cannot both finish the parent: the second finds it `finished` and changes
//! nothing.
//!
//! A batch can be a child of another ([`BatchBuilder::sub_batch`]): when it completes, it counts
//! as one finished child of its parent, in the same transaction.
//!
//! # Cancelling
//!
//! [`cancel_batch`] finishes the pending children as failed (`{"cancelled": true, ...}`, as
//! [`admin::cancel`](crate::admin::cancel) records them), asks the running ones to stop, cancels
//! running sub-batches, and finishes the parent as failed with the reason; `on_complete` runs
//! once.
//!
//! A batch whose children run in an order, each after the ones it depends on, is a
//! [workflow](crate::workflow).

mod builder;
#[cfg(feature = "r2d2")]
mod wait;

pub use crate::completion::{cancel_batch, BatchSummary, PARENT_CONTEXT_TYPE};
pub(crate) use builder::child_row;
pub use builder::{BatchBuilder, Child};

use serde::{Deserialize, Serialize};

use crate::backend::BatchConnection;
use crate::error::{Error, Result};
use crate::operation::BatchOperation;

/// How far a batch has come, from its counts row: one query by primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// Children the batch was created with.
    pub total: i64,
    /// Children finished `successful`.
    pub succeeded: i64,
    /// Children finished `failed`.
    pub failed: i64,
}

impl BatchProgress {
    /// Children finished either way.
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed
    }

    /// Children not finished yet (pending, running, or waiting for a retry).
    pub fn pending(&self) -> i64 {
        (self.total - self.finished()).max(0)
    }

    /// Whether every child has finished.
    pub fn is_complete(&self) -> bool {
        self.finished() >= self.total
    }
}

impl BatchOperation {
    /// The progress of the batch whose parent operation is `id`: one query.
    ///
    /// # Errors
    ///
    /// [`Error::NotABatch`] when `id` is not a batch's parent (or no longer exists).
    pub fn batch_progress<C: BatchConnection>(conn: &mut C, id: i64) -> Result<BatchProgress> {
        use crate::backend::Storage;
        let row = conn
            .storage()
            .find_batch(id)?
            .ok_or(Error::NotABatch { id })?;
        Ok(BatchProgress {
            total: row.total,
            succeeded: row.succeeded,
            failed: row.failed,
        })
    }
}
