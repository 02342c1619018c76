//! Riding through database outages: how a worker's threads and keeper wait for the database to
//! answer again instead of stopping, and how the worker tells an operator about it.
//!
//! A database call that fails is *connection trouble* when the connection it ran on no longer
//! answers (a restart, a failover, a connection cut by a proxy or killed by an administrator),
//! or when the pool cannot hand out a connection at all. Any other failure (a missing table, a
//! constraint) is a fault that retrying would only repeat: it stops the worker as before.
//!
//! On connection trouble the connection is dropped (the pool tests a connection before handing
//! it out again, and replaces a dead one), and the thread waits with [`Backoff`] before taking a
//! new one. [`Outage`] counts the worker's connections that are down: the first to go logs one
//! warning, the last to come back one recovery line, and after
//! [`Worker::give_up_after`](super::Worker::give_up_after) without a database the worker stops.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::r2d2::R2D2Connection;

use crate::error::Error;

use super::shared::lock;

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to reconnect.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// Whether `error`, from a call on `conn` (if the call had a connection), means the database
/// cannot be reached, rather than that the statement itself was refused.
pub(super) fn is_connection_trouble<C: R2D2Connection>(
    error: &Error,
    conn: Option<&mut C>,
) -> bool {
    match error {
        Error::Pool(_) => true,
        // The statement failed: the connection tells whether it is still there.
        Error::Database(_) => conn.is_none_or(|conn| conn.ping().is_err()),
        _ => false,
    }
}

/// The state of the worker's connections, shared by its threads and its keeper.
#[derive(Debug)]
pub(super) struct Outage {
    give_up_after: Option<Duration>,
    down: Mutex<Down>,
    reconnects: AtomicUsize,
    /// A connection failed since the keeper last refreshed the held operations' heartbeats:
    /// until it has, they may look lost to this worker's own claims (an outage longer than the
    /// lease), so the claims do not look for lost operations.
    heartbeats_stale: AtomicBool,
    /// Claims a lost connection cut off before the worker heard whether they committed, not
    /// yet settled: their operations, if any, run under this worker with no one refreshing
    /// their heartbeats, so they too would look lost.
    unsettled_claims: AtomicUsize,
}

#[derive(Debug, Default)]
struct Down {
    /// Connections (threads and keeper) that failed and have not worked again since.
    connections: usize,
    /// When the first of them failed.
    since: Option<Instant>,
}

impl Outage {
    pub(super) fn new(give_up_after: Option<Duration>) -> Self {
        Outage {
            give_up_after,
            down: Mutex::default(),
            reconnects: AtomicUsize::new(0),
            heartbeats_stale: AtomicBool::new(false),
            unsettled_claims: AtomicUsize::new(0),
        }
    }

    /// How many times a connection that had failed worked again.
    pub(super) fn reconnects(&self) -> usize {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the held operations' heartbeats may have gone stale in an outage and not been
    /// refreshed since.
    pub(super) fn heartbeats_stale(&self) -> bool {
        self.heartbeats_stale.load(Ordering::SeqCst)
    }

    /// The keeper is about to refresh every held heartbeat: returns whether they were stale
    /// (the keeper marks them stale again if the refresh fails).
    pub(super) fn take_stale_heartbeats(&self) -> bool {
        self.heartbeats_stale.swap(false, Ordering::SeqCst)
    }

    /// Whether the worker's claims may look for lost workers' operations: not while its own
    /// may look lost (stale heartbeats, unsettled claims), or it would take them from itself and
    /// count an attempt the outage cut short.
    pub(super) fn may_look_for_lost(&self) -> bool {
        !self.heartbeats_stale() && self.unsettled_claims.load(Ordering::SeqCst) == 0
    }

    /// A claim failed with its connection: whether it committed is not known yet.
    pub(super) fn claim_unsettled(&self) {
        self.unsettled_claims.fetch_add(1, Ordering::SeqCst);
    }

    /// A claim [`claim_unsettled`](Self::claim_unsettled) reported is settled (its operations
    /// found and given back, or none).
    pub(super) fn claim_settled(&self) {
        self.unsettled_claims.fetch_sub(1, Ordering::SeqCst);
    }

    /// The held heartbeats could not be refreshed.
    pub(super) fn mark_heartbeats_stale(&self) {
        self.heartbeats_stale.store(true, Ordering::SeqCst);
    }

    /// Whether the worker has been without a database longer than it is willing to wait.
    pub(super) fn given_up(&self) -> bool {
        let down = lock(&self.down);
        match (self.give_up_after, down.since) {
            (Some(limit), Some(since)) => since.elapsed() >= limit,
            _ => false,
        }
    }
}

/// One connection's view of an outage: a worker thread's or the keeper's.
#[derive(Debug)]
pub(super) struct ConnectionState {
    down: bool,
    backoff: Backoff,
}

impl ConnectionState {
    pub(super) fn new() -> Self {
        ConnectionState {
            down: false,
            backoff: Backoff::new(),
        }
    }

    /// This connection failed with `error`: returns how long to wait before trying again.
    pub(super) fn failed(&mut self, outage: &Outage, error: &Error, who: &str) -> Duration {
        outage.mark_heartbeats_stale();
        if !self.down {
            self.down = true;
            let mut down = lock(&outage.down);
            down.connections += 1;
            if down.connections == 1 {
                down.since = Some(Instant::now());
                tracing::warn!(%error, connection = who, "lost the database; retrying with backoff until it answers");
            }
        }
        self.backoff.next_wait()
    }

    /// A call on this connection worked: the end of its outage, if it was down.
    pub(super) fn worked(&mut self, outage: &Outage) {
        if !self.down {
            return;
        }
        self.down = false;
        self.backoff = Backoff::new();
        outage.reconnects.fetch_add(1, Ordering::Relaxed);
        let mut down = lock(&outage.down);
        down.connections = down.connections.saturating_sub(1);
        if down.connections == 0 {
            if let Some(since) = down.since.take() {
                tracing::info!(after = ?since.elapsed(), "the database answers again; carrying on");
            }
        }
    }
}

/// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms ... up to 10 s, each wait drawn
/// between half and all of its step, so that the threads of many workers do not all knock on
/// a restarted server at the same instant.
#[derive(Debug)]
pub(super) struct Backoff {
    step: Duration,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff { step: FIRST_WAIT }
    }

    pub(super) fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(LONGEST_WAIT);
        step / 2 + step.mul_f64(random_fraction() / 2.0)
    }
}

/// A number in [0, 1): randomly keyed hashing, the standard library's only source of
/// randomness, is plenty for jitter.
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds_with_jitter() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[1] >= Duration::from_millis(100) && waits[1] <= Duration::from_millis(200));
        for wait in &waits[8..] {
            assert!(
                *wait >= Duration::from_secs(5) && *wait <= LONGEST_WAIT,
                "{wait:?}"
            );
        }
    }

    #[test]
    fn an_outage_counts_connections_down_and_back() {
        let outage = Outage::new(Some(Duration::ZERO));
        let error = Error::Internal("test");
        let (mut a, mut b) = (ConnectionState::new(), ConnectionState::new());
        assert!(!outage.given_up());
        a.failed(&outage, &error, "a");
        a.failed(&outage, &error, "a");
        b.failed(&outage, &error, "b");
        assert_eq!(lock(&outage.down).connections, 2);
        assert!(outage.given_up()); // zero patience
        a.worked(&outage);
        assert!(lock(&outage.down).since.is_some());
        b.worked(&outage);
        b.worked(&outage);
        assert_eq!(lock(&outage.down).connections, 0);
        assert!(lock(&outage.down).since.is_none());
        assert_eq!(outage.reconnects(), 2);
        assert!(!outage.given_up());
    }
}
