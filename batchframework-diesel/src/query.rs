//! Finding operations: [`OperationFilter`] and [`BatchOperation::find`].
//!
//! The same filter that lists operations also removes pending ones, the
//! `.filter(operationtype=..., context_object=...).remove()` of `ievv_batchframework`'s
//! documentation.

use chrono::{DateTime, Utc};

use crate::backend::{BatchConnection, UtcDateTime};
use crate::context::{ContextObject, ContextRef};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

/// A set of conditions on operations (every condition given must hold), and for
/// [`load`](Self::load) the order, size and start of the page to read.
///
/// ```
/// # use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter, Status};
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let post = ContextRef::new("blog_posts", 17);
/// BatchOperation::create_asynchronous("new-blogpost-email")
///     .context_object(&post)
///     .insert(&mut conn)?;
///
/// let pending = OperationFilter::new()
///     .operation_type("new-blogpost-email")
///     .context_object(&post)
///     .status(Status::Unprocessed);
/// assert_eq!(pending.count(&mut conn)?, 1);
///
/// // The user cancelled in time: remove the pending email.
/// assert_eq!(pending.remove_pending(&mut conn)?, 1);
/// assert!(pending.load(&mut conn)?.is_empty());
/// # Ok(())
/// # }
/// ```
///
/// Listing page by page, newest first, for an admin screen: each page starts after the last id
/// of the previous one ([`after_id`](Self::after_id)), so a page deep into a million operations
/// costs what the first one does.
///
/// ```
/// # use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult};
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// for _ in 0..5 {
///     let mut op = BatchOperation::create_synchronous("import").insert(&mut conn)?;
///     op.finish_failed(&mut conn, &"file not found")?;
/// }
///
/// let failed = OperationFilter::new()
///     .operation_type("import")
///     .result(OperationResult::Failed)
///     .limit(2);
/// let mut seen = Vec::new();
/// let mut page = failed.load(&mut conn)?;
/// while let Some(last) = page.last().map(BatchOperation::id) {
///     seen.extend(page.iter().map(BatchOperation::id));
///     page = failed.clone().after_id(last).load(&mut conn)?;
/// }
/// assert_eq!(seen, [5, 4, 3, 2, 1]);
/// assert_eq!(failed.count(&mut conn)?, 5); // all matches, whatever the page
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub(crate) operation_type: Option<String>,
    pub(crate) context_object: Option<ContextRef>,
    pub(crate) status: Option<Status>,
    pub(crate) result: Option<OperationResult>,
    pub(crate) queue: Option<String>,
    pub(crate) started_by: Option<String>,
    pub(crate) created_before: Option<DateTime<Utc>>,
    pub(crate) created_after: Option<DateTime<Utc>>,
    /// Set only by [`Prune`](crate::Prune): operations finished strictly before this instant.
    pub(crate) finished_before: Option<DateTime<Utc>>,
    pub(crate) order: OperationOrder,
    pub(crate) limit: Option<u32>,
    pub(crate) after_id: Option<i64>,
}

/// The order [`OperationFilter::load`] returns operations in, and the key
/// [`OperationFilter::after_id`] pages by.
///
/// Every order is total (ties in creation time are broken by id, in the same direction), so a
/// page boundary never skips or repeats an operation. Ordering by id uses the primary key; the
/// table has no index on `created_datetime`, so ordering by creation time sorts the matching
/// operations on every page. Ids follow creation order except where application servers'
/// clocks disagree, so prefer id order for long listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationOrder {
    /// Newest first by id (`ORDER BY id DESC`); the default.
    #[default]
    IdDescending,
    /// Oldest first by id (`ORDER BY id ASC`).
    IdAscending,
    /// Newest first by creation time (`ORDER BY created_datetime DESC, id DESC`).
    CreatedDescending,
    /// Oldest first by creation time (`ORDER BY created_datetime ASC, id ASC`).
    CreatedAscending,
}

impl OperationOrder {
    /// Whether later pages hold smaller keys.
    #[cfg_attr(
        not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn is_descending(self) -> bool {
        matches!(
            self,
            OperationOrder::IdDescending | OperationOrder::CreatedDescending
        )
    }

    /// Whether the key includes the creation time.
    fn by_creation_time(self) -> bool {
        matches!(
            self,
            OperationOrder::CreatedDescending | OperationOrder::CreatedAscending
        )
    }
}

/// Where a page starts: after the operation `id`, whose creation time is `created` when the
/// order is by creation time. Resolved from [`OperationFilter::after_id`] before the query.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]
pub struct Keyset {
    pub(crate) id: i64,
    pub(crate) created: Option<DateTime<Utc>>,
}

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
        Ok(conn.load_operations(self, keyset)?)
    }

    /// How many operations match the conditions, for a total next to a page: the order,
    /// [`limit`](Self::limit) and [`after_id`](Self::after_id) are ignored.
    pub fn count<C: BatchConnection>(&self, conn: &mut C) -> Result<i64> {
        Ok(conn.count_operations(self)?)
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
    /// # Errors
    ///
    /// As for [`load`](Self::load).
    pub fn remove_pending<C: BatchConnection>(&self, conn: &mut C) -> Result<usize> {
        let keyset = self.keyset(conn)?;
        Ok(conn.delete_pending(self, keyset)?)
    }

    /// Resolves [`after_id`](Self::after_id) into the key of the current order.
    fn keyset<C: BatchConnection>(&self, conn: &mut C) -> Result<Option<Keyset>> {
        let Some(id) = self.after_id else {
            return Ok(None);
        };
        let created = if self.order.by_creation_time() {
            Some(conn.operation_created(id)?.ok_or(Error::NotFound { id })?)
        } else {
            None
        };
        Ok(Some(Keyset { id, created }))
    }
}

impl BatchOperation {
    /// The operation with this id, or [`Error::NotFound`].
    pub fn find<C: BatchConnection>(conn: &mut C, id: i64) -> Result<BatchOperation> {
        conn.find_operation(id)?.ok_or(Error::NotFound { id })
    }

    /// Reloads this operation from the database, e.g. after another connection changed it.
    pub fn reload<C: BatchConnection>(&mut self, conn: &mut C) -> Result<()> {
        *self = Self::find(conn, self.id)?;
        Ok(())
    }
}
