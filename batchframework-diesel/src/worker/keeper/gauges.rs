//! Queue gauges (with [`Worker::queue_metrics_every`](super::super::Worker::queue_metrics_every)):
//! the keeper counts its worker's queues (due, delayed and running, each up to
//! [`GAUGE_COUNT_LIMIT`]) and their lag, and sets the `metrics` gauges.

use std::time::{Duration, Instant};

use crate::backend::{Storage, WorkerConnection};
use crate::overview::count_queue;

use super::super::metrics;
use super::Keeper;

/// How far the gauges count: past it a queue's depth reads as this many.
pub(super) const GAUGE_COUNT_LIMIT: u64 = 10_000;

/// When the keeper next reports the gauges, and how often.
pub(super) struct Gauges {
    every: Duration,
    next: Instant,
}

impl Gauges {
    pub(super) fn new(every: Duration) -> Self {
        Gauges {
            every,
            next: Instant::now(),
        }
    }

    /// How soon the gauges are due.
    pub(super) fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }
}

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// Reports the gauges if it is time to.
    pub(super) fn report_gauges(&mut self) {
        let Some(gauges) = self.gauges.as_mut() else {
            return;
        };
        if Instant::now() < gauges.next {
            return;
        }
        gauges.next = Instant::now() + gauges.every;
        let queues = &self.queues;
        let now = self.clock.now();
        let reported = self.conn.connect().and_then(|(conn, _)| {
            let storage = conn.storage();
            for queue in queues {
                let lag = storage.oldest_due(queue, now)?.map(|since| now - since);
                let counts = count_queue(storage, queue.clone(), now, GAUGE_COUNT_LIMIT)?;
                metrics::queue_gauges(&counts, lag);
            }
            Ok(())
        });
        if let Err(error) = reported {
            tracing::warn!(%error, "could not count the queues for their gauges");
            self.conn.discard();
        }
    }
}
