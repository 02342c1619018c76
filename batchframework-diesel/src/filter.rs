//! What a search for operations asks for, as plain values: [`OperationFilter`]'s conditions,
//! order and page, read by the storage layer. The builder methods and the queries that use them
//! are in the `query` module, above the storage layer; the data is here, below it, so the storage
//! layer reads a filter without importing the module that runs it.

use chrono::{DateTime, Utc};

use crate::context::ContextRef;
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
    pub(crate) parent: Option<i64>,
    pub(crate) created_before: Option<DateTime<Utc>>,
    pub(crate) created_after: Option<DateTime<Utc>>,
    pub(crate) finished_before: Option<DateTime<Utc>>,
    pub(crate) finished_after: Option<DateTime<Utc>>,
    pub(crate) order: OperationOrder,
    pub(crate) limit: Option<u32>,
    pub(crate) after_id: Option<i64>,
}

/// The order [`OperationFilter::load`] returns operations in, and the key
/// [`OperationFilter::after_id`] pages by.
///
/// Every order is total (ties in creation time are broken by id, in the same direction), so a
/// page boundary never skips or repeats an operation. Ordering by id uses the primary key,
/// ordering by creation time the `(created_datetime, id)` index. Ids follow creation order
/// except where application servers' clocks disagree.
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
    pub(crate) fn by_creation_time(self) -> bool {
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
