//! Finishes per minute over a recent window, for a chart of how fast work is going.

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::backend::{now, BatchConnection, Storage};
use crate::error::Result;
use crate::status::{OperationResult, Status};

/// One minute of [`Throughput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The start of the minute (UTC, whole minutes).
    pub start: DateTime<Utc>,
    /// Operations that finished `successful` in it, in every queue.
    pub succeeded: u64,
    /// Operations that finished `failed` in it, in every queue.
    pub failed: u64,
}

/// Finishes per minute, both results, oldest minute first, as [`finishes_per_minute`] read
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    /// One entry per minute of the window, the current (partial) minute last.
    pub minutes: Vec<MinuteCounts>,
    /// `None` when every finish of the window was counted. Otherwise the time before which the
    /// counts are short: a queue finished more than the limit of one result within the window,
    /// and only its newest ones, back to this time, were read.
    pub counted_since: Option<DateTime<Utc>>,
}

/// Operations finished per minute over the last `minutes` minutes, by result, summed over every
/// queue.
///
/// Counts at most `limit` finishes per queue and result, from the index of finished operations
/// and on the server (one statement of at most `minutes` rows each), so its cost is bounded by
/// the number of queues and the limit, not by the history.
/// Past the limit the older minutes are short, and [`Throughput::counted_since`] says from when
/// the counts are whole.
///
/// ```
/// # use batchframework_diesel::{admin, BatchOperation};
/// # use diesel::Connection;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let mut op = BatchOperation::create_synchronous("import").insert(&mut conn)?;
/// op.finish_failed(&mut conn, &"file not found")?;
///
/// let throughput = admin::finishes_per_minute(&mut conn, 60, 10_000)?;
/// assert_eq!(throughput.minutes.len(), 60);
/// assert_eq!(throughput.minutes.iter().map(|m| m.failed).sum::<u64>(), 1);
/// assert_eq!(throughput.counted_since, None);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// Database errors ([`Error::NotMigrated`](crate::Error::NotMigrated) before the migrations).
pub fn finishes_per_minute<C: BatchConnection>(
    conn: &mut C,
    minutes: u32,
    limit: u64,
) -> Result<Throughput> {
    let storage = conn.storage();
    let minutes = minutes.max(1);
    let now = now();
    let current = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let first = current - Duration::minutes(i64::from(minutes) - 1);
    let mut counts: Vec<MinuteCounts> = (0..minutes)
        .map(|i| MinuteCounts {
            start: first + Duration::minutes(i64::from(i)),
            succeeded: 0,
            failed: 0,
        })
        .collect();
    let mut counted_since: Option<DateTime<Utc>> = None;
    let limit = limit.max(1);
    for queue in storage.queues_with(Status::Finished)? {
        for result in [OperationResult::Successful, OperationResult::Failed] {
            let counted = storage.finishes_by_minute(&queue, result, first, limit)?;
            let total: i64 = counted.iter().map(|minute| minute.finishes).sum();
            if u64::try_from(total).unwrap_or(0) >= limit {
                let oldest = counted.iter().filter_map(|minute| minute.oldest).min();
                if let Some(oldest) = oldest {
                    counted_since = Some(counted_since.map_or(oldest, |since| since.max(oldest)));
                }
            }
            for minute in counted {
                // A finish stamped after now (another host's clock) counts in the current minute.
                let index = usize::try_from(minute.minute.max(0))
                    .unwrap_or(0)
                    .min(counts.len() - 1);
                let finishes = u64::try_from(minute.finishes).unwrap_or(0);
                match result {
                    OperationResult::Failed => counts[index].failed += finishes,
                    _ => counts[index].succeeded += finishes,
                }
            }
        }
    }
    Ok(Throughput {
        minutes: counts,
        counted_since,
    })
}
