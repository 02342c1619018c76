//! Finding operations: [`OperationFilter`] and [`BatchOperation::find`].
//!
//! The same filter that lists operations also removes pending ones, which is what the seed's
//! documented `.filter(operationtype=..., context_object=...).remove()` meant to do.

use chrono::{DateTime, Utc};

use crate::backend::{BatchConnection, UtcDateTime};
use crate::context::ContextObject;
use crate::error::{Error, Result};
use crate::operation::{BatchOperation, Status};

/// A set of conditions on operations; every condition given must hold.
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub(crate) operation_type: Option<String>,
    pub(crate) context_object: Option<(String, String)>,
    pub(crate) status: Option<Status>,
    pub(crate) created_before: Option<DateTime<Utc>>,
}

impl OperationFilter {
    /// A filter that matches every operation.
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
        self.context_object = Some((
            context.context_object_type().into_owned(),
            context.context_object_id().as_str().to_owned(),
        ));
        self
    }

    /// Only operations in this status.
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// Only operations created strictly before this instant (any instant: one outside the
    /// years 0001–9999 is clamped into them, which selects the same operations).
    pub fn created_before(mut self, instant: DateTime<Utc>) -> Self {
        self.created_before = Some(UtcDateTime(instant).clamped().0);
        self
    }

    /// The matching operations, oldest (lowest id) first.
    pub fn load<C: BatchConnection>(&self, conn: &mut C) -> Result<Vec<BatchOperation>> {
        Ok(conn.load_operations(self)?)
    }

    /// How many operations match.
    pub fn count<C: BatchConnection>(&self, conn: &mut C) -> Result<i64> {
        Ok(conn.count_operations(self)?)
    }

    /// Deletes the matching operations that are still `unprocessed` and returns how many were
    /// deleted. Running and finished operations are never touched, whatever the filter says:
    /// one already picked up cannot be taken back by deleting its row.
    ///
    /// This is the seed's cancel case: a post's email operation is removed if the user cancels
    /// before a worker starts it.
    pub fn remove_pending<C: BatchConnection>(&self, conn: &mut C) -> Result<usize> {
        Ok(conn.delete_pending(self)?)
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
