//! The worker's clock: the database server's, read once at start and again every minute, so
//! workers on machines whose clocks disagree agree on leases (whose heartbeat is stale) and on
//! when delayed work and retries are due.
//!
//! Each reading takes the server's time and the local time around the query; the offset between
//! them (the server's time minus the local time halfway through the round trip) is added to the
//! local clock until the next reading. SQLite runs in this process: its clock is this machine's,
//! and the offset stays zero.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use diesel::QueryResult;

use crate::backend::Storage;

/// How often the keeper reads the server's clock again.
pub(super) const RESYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Default)]
pub(super) struct Clock {
    /// The server's clock minus the local one, in microseconds.
    offset_micros: AtomicI64,
    /// A wrong local clock, for tests that show the offset corrects it.
    skew: Duration,
}

impl Clock {
    pub(super) fn with_skew(skew: Duration) -> Self {
        Clock {
            offset_micros: AtomicI64::new(0),
            skew,
        }
    }

    /// The server's time now, at the precision every backend stores.
    pub(super) fn now(&self) -> DateTime<Utc> {
        let offset = Duration::microseconds(self.offset_micros.load(Ordering::Relaxed));
        (self.local() + offset).trunc_subsecs(6)
    }

    /// Reads the server's clock and keeps the offset to it.
    pub(super) fn sync<S: Storage>(&self, storage: &mut S) -> QueryResult<()> {
        let before = self.local();
        let server = storage.database_now()?;
        let after = self.local();
        if let Some(server) = server {
            let midway = before + (after - before) / 2;
            let offset = (server - midway).num_microseconds().unwrap_or(0);
            self.offset_micros.store(offset, Ordering::Relaxed);
        }
        Ok(())
    }

    fn local(&self) -> DateTime<Utc> {
        Utc::now() + self.skew
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_clock_reads_its_skew_until_synced() {
        let clock = Clock::with_skew(Duration::hours(2));
        let ahead = clock.now() - Utc::now();
        assert!(
            ahead > Duration::minutes(119) && ahead < Duration::minutes(121),
            "{ahead}"
        );
        clock.offset_micros.store(
            Duration::hours(-2).num_microseconds().unwrap_or(0),
            Ordering::Relaxed,
        );
        let ahead = clock.now() - Utc::now();
        assert!(ahead.num_seconds().abs() < 5, "{ahead}");
    }
}
