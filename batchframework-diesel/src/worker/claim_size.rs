//! How many operations a worker thread claims at once: as many as it expects to run within
//! [`BATCH_TIME`], judged by how long its last batch took per operation, up to
//! [`Worker::batch_size`](super::Worker::batch_size).
//!
//! A claim costs a transaction and a commit whatever its size, and so does the keeper's write
//! of the results, so short operations are claimed by the dozen or the hundred and share them.
//! Long ones are claimed one at a time, so that none waits in one thread's batch while another
//! thread or worker could run it. A thread starts at one and grows by at most
//! [`GROWTH`] times per claim, so one quick first operation does not make it take a hundred
//! slow ones.

use std::time::Duration;

/// How long a thread expects to take over one claimed batch.
const BATCH_TIME: Duration = Duration::from_millis(20);

/// How much larger one claim may be than the last.
const GROWTH: i64 = 4;

/// The size of a worker thread's next claim.
#[derive(Debug)]
pub(super) struct ClaimSize {
    largest: i64,
    next: i64,
    by_run_time: bool,
}

impl ClaimSize {
    /// Claims of at most `largest` (at least one), starting at one; or, unless `by_run_time`,
    /// always `largest` (see `WorkerBackend::CLAIMS_SIZED_BY_RUN_TIME`).
    pub(super) fn new(largest: i64, by_run_time: bool) -> Self {
        let largest = largest.max(1);
        ClaimSize {
            largest,
            next: if by_run_time { 1 } else { largest },
            by_run_time,
        }
    }

    /// How many operations to claim next.
    pub(super) fn next(&self) -> i64 {
        self.next
    }

    /// The last claim's `ran` operations took `took` (their actions, and handing over their
    /// results).
    pub(super) fn ran(&mut self, ran: usize, took: Duration) {
        let Ok(ran) = u32::try_from(ran) else {
            return;
        };
        if ran == 0 || !self.by_run_time {
            return;
        }
        let per_operation = (took / ran).max(Duration::from_nanos(1));
        let fit = BATCH_TIME.as_nanos() / per_operation.as_nanos();
        let fit = i64::try_from(fit).unwrap_or(i64::MAX);
        self.next = fit
            .min(self.next.saturating_mul(GROWTH))
            .clamp(1, self.largest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_operations_grow_the_claim_by_steps_up_to_the_largest() {
        let mut size = ClaimSize::new(100, true);
        let mut seen = vec![size.next()];
        // Each batch takes 10 µs per operation, far below the batch time.
        for claimed in [1_u32, 4, 16, 64, 100] {
            assert_eq!(size.next(), i64::from(claimed));
            size.ran(claimed as usize, Duration::from_micros(10) * claimed);
            seen.push(size.next());
        }
        assert_eq!(seen, [1, 4, 16, 64, 100, 100]);
    }

    #[test]
    fn slow_operations_are_claimed_one_at_a_time() {
        let mut size = ClaimSize::new(100, true);
        size.ran(1, Duration::from_micros(10));
        assert_eq!(size.next(), 4);
        size.ran(4, Duration::from_millis(400));
        assert_eq!(size.next(), 1);
        // 5 ms each: four fit in the batch time.
        size.ran(1, Duration::from_millis(5));
        assert_eq!(size.next(), 4);
    }

    #[test]
    fn a_claim_that_ran_nothing_changes_nothing() {
        let mut size = ClaimSize::new(10, true);
        size.ran(0, Duration::ZERO);
        assert_eq!(size.next(), 1);
        assert_eq!(ClaimSize::new(0, true).next(), 1);
    }

    #[test]
    fn without_sizing_by_run_time_every_claim_asks_for_the_largest() {
        let mut size = ClaimSize::new(10, false);
        assert_eq!(size.next(), 10);
        size.ran(10, Duration::from_secs(10));
        assert_eq!(size.next(), 10);
    }
}
