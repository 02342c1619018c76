//! One row per queue: what an operator looks at first.

use chrono::{DateTime, Duration, Utc};

use crate::backend::{now, BatchConnection, Storage};
use crate::error::Result;
use crate::overview::{count_queue, Count};
use crate::status::{OperationResult, Status};

/// Operations of a queue that finished with one result recently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentCounts {
    /// In the last 5 minutes.
    pub last_5_minutes: Count,
    /// In the last hour.
    pub last_hour: Count,
    /// In the last 24 hours.
    pub last_day: Count,
}

/// One queue, as [`queue_overview`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOverview {
    /// The queue.
    pub queue: String,
    /// Whether workers are kept from claiming its operations ([`pause_queue`](super::pause_queue)).
    pub paused: bool,
    /// Pending and due now: immediate work, and delayed work whose `run_after` has passed.
    pub due: Count,
    /// Pending and delayed until later (scheduled work, retries in backoff).
    pub delayed: Count,
    /// Running.
    pub running: Count,
    /// Since when its longest-waiting due operation has been due: `now` minus this is the
    /// queue's lag; `None` when nothing is due.
    pub oldest_due: Option<DateTime<Utc>>,
    /// Operations that finished `successful`.
    pub succeeded: RecentCounts,
    /// Operations that finished `failed`.
    pub failed: RecentCounts,
    /// Operations finished per minute, both results, over the last 5 minutes.
    pub finished_per_minute_5m: f64,
    /// Operations finished per minute, both results, over the last 60 minutes.
    pub finished_per_minute_60m: f64,
}

impl QueueOverview {
    /// How long its longest-waiting due operation has waited at `now` (zero if it became due
    /// after `now`); `None` when nothing is due.
    pub fn lag(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.oldest_due
            .map(|since| (now - since).max(Duration::zero()))
    }
}

/// Every queue that has pending or running work, finished work in its history, or a pause,
/// in name order, with its counts, lag and throughput.
///
/// Every count reads at most `limit + 1` entries of an index that holds only what it counts
/// (pending and running operations; finished ones by queue, result and finish time), and is
/// [`Count::AtLeast`] past that, so the cost grows with the number of queues and the limit,
/// never with the backlog or the history. Throughput is the finishes of the window per minute;
/// when there were more than `limit` of one result, it is measured over the newest `limit` of
/// them instead (how fast they came lately). The figures are read one after another, not from
/// one snapshot.
///
/// # Errors
///
/// Database errors ([`Error::NotMigrated`](crate::Error::NotMigrated) before the migrations).
pub fn queue_overview<C: BatchConnection>(conn: &mut C, limit: u64) -> Result<Vec<QueueOverview>> {
    let storage = conn.storage();
    let paused = storage.paused_queues()?;
    let mut queues = paused.clone();
    for status in [Status::Unprocessed, Status::Running, Status::Finished] {
        queues.extend(storage.queues_with(status)?);
    }
    queues.sort_unstable();
    queues.dedup();
    let now = now();
    let limit = limit.max(1);
    queues
        .into_iter()
        .map(|queue| {
            let is_paused = paused.contains(&queue);
            let succeeded =
                Finishes::read(storage, &queue, OperationResult::Successful, now, limit)?;
            let failed = Finishes::read(storage, &queue, OperationResult::Failed, now, limit)?;
            let oldest_due = storage.oldest_due(&queue, now)?;
            let counts = count_queue(storage, queue, now, limit)?;
            Ok(QueueOverview {
                queue: counts.queue,
                paused: is_paused,
                due: counts.due,
                delayed: counts.delayed,
                running: counts.running,
                oldest_due,
                succeeded: succeeded.counts(),
                failed: failed.counts(),
                finished_per_minute_5m: succeeded.per_minute(Duration::minutes(5))
                    + failed.per_minute(Duration::minutes(5)),
                finished_per_minute_60m: succeeded.per_minute(Duration::hours(1))
                    + failed.per_minute(Duration::hours(1)),
            })
        })
        .collect()
}

/// The finish times of a queue's operations of one result over the last day, newest first,
/// at most `limit` of them, and whether there were more.
struct Finishes {
    times: Vec<DateTime<Utc>>,
    more: bool,
    now: DateTime<Utc>,
    limit: u64,
}

impl Finishes {
    fn read<S: Storage>(
        storage: &mut S,
        queue: &str,
        result: OperationResult,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Finishes> {
        let since = now - Duration::days(1);
        let mut times = storage.recent_finishes(queue, result, since, limit.saturating_add(1))?;
        let more = times.len() as u64 > limit;
        times.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(Finishes {
            times,
            more,
            now,
            limit,
        })
    }

    /// How many finished within `window` before now: exact unless every time read is inside
    /// the window and there were more.
    fn within(&self, window: Duration) -> Count {
        let since = self.now - window;
        let inside = self.times.iter().take_while(|time| **time > since).count() as u64;
        if self.more && inside == self.times.len() as u64 {
            Count::AtLeast(self.limit)
        } else {
            Count::Exact(inside)
        }
    }

    fn counts(&self) -> RecentCounts {
        RecentCounts {
            last_5_minutes: self.within(Duration::minutes(5)),
            last_hour: self.within(Duration::hours(1)),
            last_day: self.within(Duration::days(1)),
        }
    }

    /// Finishes per minute over `window`; past the limit, over the span of the newest `limit`.
    fn per_minute(&self, window: Duration) -> f64 {
        let (count, span) = match (self.within(window), self.times.last()) {
            // At least a second: a finish stamped after `now` (another host's clock) must not
            // make the span vanish.
            (Count::AtLeast(count), Some(oldest)) => {
                (count, (self.now - *oldest).max(Duration::seconds(1)))
            }
            (count, _) => (count.value(), window),
        };
        let minutes = span.num_milliseconds().max(1) as f64 / 60_000.0;
        count as f64 / minutes
    }
}
