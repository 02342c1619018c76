//! What an operator asks of the queues first, answered from indexes that hold only active
//! operations, so the answers cost the same with ten million finished operations in the table
//! as with none.
//!
//! The rest of the questions are [`OperationFilter`](crate::OperationFilter)s: failures in a
//! time window (`result(Failed).finished_after(..)`, from an index of failures alone), the
//! newest operations of a type or context object, history by creation time; and the size of
//! the history is the database's estimate ([`estimated_total`]), never a count of it all.
//!
//! ```
//! use batchframework_diesel::overview::{active_counts, oldest_due};
//! use batchframework_diesel::{BatchOperation, Status};
//! # use diesel::Connection;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
//! # batchframework_diesel::run_migrations(&mut conn)?;
//!
//! BatchOperation::create_asynchronous("send-email").insert(&mut conn)?;
//! BatchOperation::create_asynchronous("send-email").insert(&mut conn)?;
//!
//! let counts = active_counts(&mut conn)?;
//! assert_eq!(counts.len(), 1);
//! assert_eq!((counts[0].queue.as_str(), counts[0].status, counts[0].count), ("default", Status::Unprocessed, 2));
//! // How long the queue's longest-waiting due operation has waited:
//! let since = oldest_due(&mut conn, "default")?.expect("two are due");
//! assert!(chrono::Utc::now() - since < chrono::Duration::minutes(1));
//! # Ok(())
//! # }
//! ```

use chrono::{DateTime, Utc};

use crate::backend::{now, BatchConnection, Storage};
use crate::error::Result;
use crate::status::Status;

/// How many operations of one queue are in one active status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCount {
    /// The queue.
    pub queue: String,
    /// [`Status::Unprocessed`] (pending, due or delayed) or [`Status::Running`].
    pub status: Status,
    /// How many; exact.
    pub count: i64,
}

/// Pending and running operations counted by queue and status, in one statement. Queues with no
/// active operation are not listed. The count reads one index entry per active operation, so
/// it costs what the pending backlog is, never what the finished history is.
pub fn active_counts<C: BatchConnection>(conn: &mut C) -> Result<Vec<ActiveCount>> {
    let rows = conn.storage().active_counts()?;
    Ok(rows
        .into_iter()
        .map(|(queue, status, count)| ActiveCount {
            queue,
            status,
            count,
        })
        .collect())
}

/// Since when the longest-waiting due operation of `queue` has been due: the creation time of
/// its oldest immediate operation, or the `run_after` of its longest-due delayed one (a retry in
/// backoff, or work scheduled for later), whichever is earlier. `None` when nothing is due.
/// `now` minus this is the queue's lag. Two index reads of one row each.
pub fn oldest_due<C: BatchConnection>(conn: &mut C, queue: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(conn.storage().oldest_due(queue, now())?)
}

/// About how many operations the table holds, history included, from the database's own
/// statistics (PostgreSQL's `reltuples`, InnoDB's table statistics, SQLite's `sqlite_stat1`):
/// one cheap read at any size, where `count(*)` over ten million rows takes seconds. `None`
/// until the database has gathered statistics (PostgreSQL's autovacuum and InnoDB do on their
/// own; SQLite after `ANALYZE`). For exact figures, count a window: an [`OperationFilter`]
/// with `created_after` or `finished_after`.
///
/// [`OperationFilter`]: crate::OperationFilter
pub fn estimated_total<C: BatchConnection>(conn: &mut C) -> Result<Option<i64>> {
    Ok(conn.storage().estimated_rows()?)
}
