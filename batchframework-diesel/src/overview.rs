//! What an operator asks of the queues first, answered from indexes that hold only active
//! operations, so the answers cost the same with ten million finished operations in the table
//! as with none; and, for counts, read no further than a limit, so that a million delayed
//! operations cost no more than a thousand.
//!
//! The rest of the questions are [`OperationFilter`](crate::OperationFilter)s: failures in a
//! time window (`result(Failed).finished_after(..)`, from an index of failures alone), the
//! newest operations of a type or context object, history by creation time; and the size of
//! the history is the database's estimate ([`estimated_total`]), never a count of it all.
//!
//! ```
//! use batchframework_diesel::overview::{oldest_due, queue_counts, Count};
//! use batchframework_diesel::BatchOperation;
//! # use diesel::Connection;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
//! # batchframework_diesel::run_migrations(&mut conn)?;
//!
//! BatchOperation::create_asynchronous("send-email").insert(&mut conn)?;
//! BatchOperation::create_asynchronous("send-email").insert(&mut conn)?;
//!
//! // Exact up to 1,000 per figure, "1000+" beyond:
//! let counts = queue_counts(&mut conn, 1_000)?;
//! assert_eq!(counts.len(), 1);
//! assert_eq!(counts[0].queue, "default");
//! assert_eq!((counts[0].due, counts[0].delayed, counts[0].running), (Count::Exact(2), Count::Exact(0), Count::Exact(0)));
//! // How long the queue's longest-waiting due operation has waited:
//! let since = oldest_due(&mut conn, "default")?.expect("two are due");
//! assert!(chrono::Utc::now() - since < chrono::Duration::minutes(1));
//! # Ok(())
//! # }
//! ```

use chrono::{DateTime, Utc};

use crate::backend::conditions::{ActivePart, Part};
use crate::backend::{now, BatchConnection, Storage};
use crate::error::Result;
use crate::status::Status;

/// A count that stops at a limit: exact up to it, "at least" beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Count {
    /// Exactly this many.
    Exact(u64),
    /// This many or more: counting stopped at the limit.
    AtLeast(u64),
}

impl Count {
    /// The number counted: the exact figure, or the limit where counting stopped.
    pub fn value(self) -> u64 {
        match self {
            Count::Exact(n) | Count::AtLeast(n) => n,
        }
    }

    /// Whether the figure is exact.
    pub fn is_exact(self) -> bool {
        matches!(self, Count::Exact(_))
    }

    /// Past `limit`, `AtLeast(limit)`: a sum of two counts stays within the same limit.
    pub(crate) fn capped(self, limit: u64) -> Count {
        if self.value() > limit {
            Count::AtLeast(limit)
        } else {
            self
        }
    }

    /// Counts `found` items of a search stopped at `limit`.
    pub(crate) fn of(found: u64, limit: u64) -> Count {
        if found > limit {
            Count::AtLeast(limit)
        } else {
            Count::Exact(found)
        }
    }
}

impl std::ops::Add for Count {
    type Output = Count;

    /// The sum, exact only if both are.
    fn add(self, other: Count) -> Count {
        let sum = self.value().saturating_add(other.value());
        if self.is_exact() && other.is_exact() {
            Count::Exact(sum)
        } else {
            Count::AtLeast(sum)
        }
    }
}

/// `12` or `10000+`.
impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exact(n) => write!(f, "{n}"),
            Count::AtLeast(n) => write!(f, "{n}+"),
        }
    }
}

/// The active operations of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Pending and due now: immediate work, and delayed work whose `run_after` has passed.
    pub due: Count,
    /// Pending and delayed until later (scheduled work, retries in backoff).
    pub delayed: Count,
    /// Running.
    pub running: Count,
}

/// The active operations of every queue that has some (pending or running), in queue name
/// order: due, delayed and running, each counted exactly up to `limit` and reported as
/// [`Count::AtLeast`] beyond.
///
/// Each figure reads at most `limit + 1` entries of an index that holds only active operations,
/// so the cost is bounded by the number of queues and the limit, never by the backlog or the
/// history: with a million operations waiting, a limit of 1,000 answers in about a millisecond.
/// The queues are found by one index seek each. The figures are read one after another, not
/// from one snapshot: under load they may disagree by the operations that moved meanwhile.
pub fn queue_counts<C: BatchConnection>(conn: &mut C, limit: u64) -> Result<Vec<QueueCounts>> {
    let storage = conn.storage();
    let mut queues = storage.queues_with(Status::Unprocessed)?;
    queues.extend(storage.queues_with(Status::Running)?);
    queues.sort_unstable();
    queues.dedup();
    let now = now();
    queues
        .into_iter()
        .map(|queue| count_queue(storage, queue, now, limit))
        .collect()
}

/// The due, delayed and running operations of `queue` at `now`, each counted up to `limit`.
pub(crate) fn count_queue<S: Storage>(
    storage: &mut S,
    queue: String,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<QueueCounts> {
    let mut count = |part: Part| -> Result<Count> {
        let part = ActivePart {
            queue: &queue,
            part,
        };
        // One more than the limit tells "exactly the limit" from "more".
        let found = storage.count_active_part(part, limit.saturating_add(1))?;
        Ok(Count::of(found, limit))
    };
    let due = (count(Part::Immediate)? + count(Part::DueDelayed(now))?).capped(limit);
    let delayed = count(Part::NotYetDue(now))?;
    let running = count(Part::Running)?;
    Ok(QueueCounts {
        queue,
        due,
        delayed,
        running,
    })
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
