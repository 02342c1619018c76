//! Finding operations: [`OperationFilter`] and [`BatchOperation::find`].
//!
//! The same filter that lists operations also removes pending ones, the
//! `.filter(operationtype=..., context_object=...).remove()` of `ievv_batchframework`'s
//! documentation.

use chrono::{DateTime, Utc};

use crate::backend::{BatchConnection, Storage, UtcDateTime};
use crate::context::{ContextObject, ContextRef};
use crate::error::{Error, Result};
use crate::filter::{Keyset, OperationFilter, OperationOrder};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

impl OperationFilter {
    /// A filter that matches every operation, newest first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only operations of this type.
    pub fn operation_type(mut self, operation_type: impl Into<String>) -> Self {
        self.operation_type = Some(operation_type.into());
        self
    }

    /// Only operations about this context object (same type key and primary key).
    pub fn context_object(mut self, context: &impl ContextObject) -> Self {
        self.context_object = Some(ContextRef::of(context));
        self
    }

    /// Only operations in this status.
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// Only operations with this result, e.g. [`OperationResult::Failed`] to list what went
    /// wrong (every unfinished operation has [`OperationResult::NotAvailable`]).
    pub fn result(mut self, result: OperationResult) -> Self {
        self.result = Some(result);
        self
    }

    /// Only operations on this worker queue, to see what one queue's workers have to do.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only operations started by this user key (as given to
    /// [`NewOperation::started_by`](crate::NewOperation::started_by)), to show users their own
    /// operations.
    pub fn started_by(mut self, user_key: impl std::fmt::Display) -> Self {
        self.started_by = Some(user_key.to_string());
        self
    }

    /// Only the children of the batch whose parent operation is `parent_id` (see
    /// [`batch`](crate::batch)).
    ///
    /// On PostgreSQL and SQLite the indexes of a batch's children hold its unfinished children
    /// and its failed ones, not those that succeeded (so that running a child costs no more
    /// index writes than needed): on PostgreSQL, combined with `.status(Status::Unprocessed)`,
    /// `.status(Status::Running)` or `.result(OperationResult::Failed)`, it reads only the
    /// batch's rows; other searches (and SQLite, but for the failures) read by status or the
    /// whole table. MySQL/MariaDB index the parent alone.
    pub fn parent(mut self, parent_id: i64) -> Self {
        self.parent = Some(parent_id);
        self
    }

    /// Only operations created strictly before this instant (any instant: one outside the
    /// years 0001–9999 is clamped into them, which selects the same operations).
    pub fn created_before(mut self, instant: DateTime<Utc>) -> Self {
        self.created_before = Some(UtcDateTime(instant).clamped().0);
        self
    }

    /// Only operations created strictly after this instant (clamped like
    /// [`created_before`](Self::created_before)). With both, the operations created in between,
    /// e.g. yesterday's.
    pub fn created_after(mut self, instant: DateTime<Utc>) -> Self {
        self.created_after = Some(UtcDateTime(instant).clamped().0);
        self
    }

    /// Only operations finished strictly before this instant (clamped like
    /// [`created_before`](Self::created_before)).
    pub fn finished_before(mut self, instant: DateTime<Utc>) -> Self {
        self.finished_before = Some(UtcDateTime(instant).clamped().0);
        self
    }

    /// Only operations finished strictly after this instant (clamped like
    /// [`created_before`](Self::created_before)). With [`result`](Self::result)`(Failed)`, the
    /// failures of a time window, read from an index of failures alone:
    ///
    /// ```
    /// # use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult};
    /// # use chrono::{Duration, Utc};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use diesel::Connection;
    /// # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
    /// # batchframework_diesel::run_migrations(&mut conn)?;
    /// let mut op = BatchOperation::create_synchronous("import").insert(&mut conn)?;
    /// op.finish_failed(&mut conn, &serde_json::json!({"error": "timeout"}))?;
    /// let last_hour = OperationFilter::new()
    ///     .result(OperationResult::Failed)
    ///     .finished_after(Utc::now() - Duration::hours(1));
    /// assert_eq!(last_hour.count(&mut conn)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn finished_after(mut self, instant: DateTime<Utc>) -> Self {
        self.finished_after = Some(UtcDateTime(instant).clamped().0);
        self
    }

    /// The order [`load`](Self::load) returns operations in, and pages by; newest first by id
    /// ([`OperationOrder::IdDescending`]) unless set.
    pub fn order_by(mut self, order: OperationOrder) -> Self {
        self.order = order;
        self
    }

    /// At most `n` operations per [`load`](Self::load): the first `n` in the order, after
    /// [`after_id`](Self::after_id) if set. [`remove_pending`](Self::remove_pending) removes at
    /// most `n`, and [`count`](Self::count) ignores it.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Keyset paging: only operations that come after the operation `id` in the current order,
    /// i.e. the next page after a page whose last operation is `id`.
    ///
    /// By id, this is `id < after` (newest first) or `id > after` (oldest first), and the
    /// database seeks the primary key to it instead of skipping rows as `OFFSET` would, so every
    /// page costs the same. By creation time the key is `(created_datetime, id)`, and the
    /// creation time of `id` is read first: that operation must still exist, or
    /// [`load`](Self::load) and [`remove_pending`](Self::remove_pending) return
    /// [`Error::NotFound`] (by id it need not exist). [`count`](Self::count) ignores it.
    pub fn after_id(mut self, id: i64) -> Self {
        self.after_id = Some(id);
        self
    }

    /// The matching operations in the filter's order (newest first unless
    /// [`order_by`](Self::order_by) says otherwise), after [`after_id`](Self::after_id) and at
    /// most [`limit`](Self::limit) of them.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when paging by creation time after an operation that no longer
    /// exists; [`Error::Database`] or [`Error::NotMigrated`] from the database.
    pub fn load<C: BatchConnection>(&self, conn: &mut C) -> Result<Vec<BatchOperation>> {
        let keyset = self.keyset(conn)?;
        Ok(conn.storage().load_operations(self, keyset)?)
    }

    /// How many operations match the conditions, for a total next to a page: the order,
    /// [`limit`](Self::limit) and [`after_id`](Self::after_id) are ignored.
    pub fn count<C: BatchConnection>(&self, conn: &mut C) -> Result<i64> {
        Ok(conn.storage().count_operations(self)?)
    }

    /// Deletes the matching operations that are still `unprocessed` and returns how many were
    /// deleted. Running and finished operations are never touched, whatever the filter says:
    /// one already picked up cannot be taken back by deleting its row.
    ///
    /// The page settings narrow what is removed, never widen it: [`after_id`](Self::after_id)
    /// removes only pending operations after that one, and [`limit`](Self::limit) at most that
    /// many, the first in the filter's order. The order alone changes nothing.
    ///
    /// This is the cancel case of `ievv_batchframework`'s documentation: a post's email
    /// operation is removed if the user cancels before a worker starts it.
    ///
    /// A worker claiming one of these operations at the same moment either gets it first (it
    /// runs and is not removed) or finds it gone. On MySQL/MariaDB the two statements can lock
    /// the same rows in opposite orders and InnoDB then rolls one back as a deadlock victim;
    /// when that is this call and `conn` is not inside a transaction, it runs again by itself.
    ///
    /// A batch's children are left alone, whatever the filter says: their batch counts them.
    /// [`batch::cancel_batch`](crate::batch::cancel_batch) cancels a batch's pending children.
    ///
    /// # Errors
    ///
    /// As for [`load`](Self::load). Inside a transaction, a deadlock victim is
    /// [`Error::RolledBack`]: the database rolled back the whole transaction; retry it.
    pub fn remove_pending<C: BatchConnection>(&self, conn: &mut C) -> Result<usize> {
        let keyset = self.keyset(conn)?;
        match conn.storage().delete_pending(self, keyset) {
            Ok(removed) => Ok(removed),
            // Outside a transaction the statement already ran again (the backend layer's
            // deadlock retry): a victim here was inside the caller's transaction.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            )) => Err(Error::RolledBack {
                action: "remove pending operations",
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Resolves [`after_id`](Self::after_id) into the key of the current order.
    fn keyset<C: BatchConnection>(&self, conn: &mut C) -> Result<Option<Keyset>> {
        let Some(id) = self.after_id else {
            return Ok(None);
        };
        let created = if self.order.by_creation_time() {
            Some(
                conn.storage()
                    .operation_created(id)?
                    .ok_or(Error::NotFound { id })?,
            )
        } else {
            None
        };
        Ok(Some(Keyset { id, created }))
    }
}

impl BatchOperation {
    /// The operation with this id, or [`Error::NotFound`].
    pub fn find<C: BatchConnection>(conn: &mut C, id: i64) -> Result<BatchOperation> {
        conn.storage()
            .find_operation(id)?
            .ok_or(Error::NotFound { id })
    }

    /// Reloads this operation from the database, e.g. after another connection changed it.
    pub fn reload<C: BatchConnection>(&mut self, conn: &mut C) -> Result<()> {
        *self = Self::find(conn, self.id)?;
        Ok(())
    }
}
