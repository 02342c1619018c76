//! The keeper: one thread per worker, with one connection of its own, that does the worker's
//! bookkeeping so its worker threads only claim and run.
//!
//! * **Results, group-committed** (`results`). Worker threads hand over each finished
//!   operation and go on to the next; the keeper writes every result waiting in one
//!   transaction, one `UPDATE` per chunk. Each write is still fenced.
//! * **Heartbeats** (`heartbeat`) for every operation held, every third of the lease, until
//!   its result is written.
//! * **Queue gauges** (`gauges`), if the worker reports them: depth and lag per queue.
//! * **Pruning** (`prune`), if the worker prunes: one batch of old finished operations per
//!   turn of the loop.
//! * **Wake-ups** (`wakeup`, PostgreSQL): the connection LISTENs for the new-work
//!   notifications the migrations' triggers send, and the keeper wakes idle worker threads when
//!   one names a queue of theirs. Between its duties the keeper sleeps on the connection's
//!   socket (and on a bell the worker threads ring when they hand over a result), so it hears
//!   of new work the moment it is announced and an idle worker costs a few wake-ups a second.
//!   Should the socket not be found (see `backend/socket.rs`), it looks for notifications
//!   every [`NOTIFICATION_CHECK`] instead: a read of what already arrived, not a query.
//!
//! Without a socket to sleep on, the keeper waits for results on the worker's condition
//! variable; either way it wakes for its next duty, or after [`LONGEST_WAIT`] at most.
//!
//! The keeper runs until every worker thread has returned and every result is written, even
//! past a shutdown's timeout, so an action that outlives it still gets its result recorded.

mod connection;
mod gauges;
mod heartbeat;
mod prune;
mod results;
mod wakeup;

use std::time::{Duration, Instant};

use crate::backend::socket::{self, Woken};
use crate::backend::WorkerConnection;
use crate::error::{Error, Result};

use std::sync::Arc;

use super::clock::{Clock, RESYNC_EVERY};
use super::outage::ConnectionState;
use super::shared::{Finished, Shared};
use super::Worker;
use connection::KeeperConnection;
use gauges::Gauges;
use prune::Pruning;

/// How often a listening keeper whose socket was not found reads the notifications that have
/// arrived.
const NOTIFICATION_CHECK: Duration = Duration::from_millis(5);

/// The longest the keeper sleeps at once, whatever its duties' cadence.
const LONGEST_WAIT: Duration = Duration::from_millis(500);

/// How soon the keeper tries again to refresh heartbeats that went stale in an outage.
const STALE_BEAT_PAUSE: Duration = Duration::from_millis(100);

/// A worker's keeper: what it needs of the worker, and its connection. It owns copies, not a
/// borrow of the worker, so it runs on a thread of its own whether the worker was started or
/// runs until idle.
pub(super) struct Keeper<C: WorkerConnection> {
    /// The worker's name, which fences every write.
    name: String,
    /// The worker's queues, whose notifications wake its threads.
    queues: Vec<String>,
    /// How often held operations get a heartbeat: a third of the lease.
    beat_every: Duration,
    /// Old finished operations to delete, if the worker prunes.
    pruning: Option<Pruning>,
    /// When to report the queue gauges, if the worker reports them.
    gauges: Option<Gauges>,
    conn: KeeperConnection<C>,
    /// Whether the keeper's connection is down, for the worker's outage count.
    connection: ConnectionState,
    /// The worker's clock (the database's), read again every [`RESYNC_EVERY`].
    clock: Arc<Clock>,
}

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// The keeper of `worker`, with its connection taken from the worker's pool and, with
    /// `listen`, subscribed to new-work notifications before any worker thread starts, so none
    /// is missed.
    pub(super) fn open(worker: &Worker<C>, listen: bool) -> Result<Self> {
        Ok(Keeper {
            name: worker.name.clone(),
            queues: worker.queues.clone(),
            beat_every: worker.lease / 3,
            pruning: worker.prune_after.map(Pruning::new),
            gauges: worker.queue_metrics_every.map(Gauges::new),
            conn: KeeperConnection::open(worker.pool.clone(), listen)?,
            connection: ConnectionState::new(),
            clock: Arc::clone(&worker.clock),
        })
    }

    /// The keeper thread's loop; see the module documentation.
    pub(super) fn run(mut self, shared: &Shared) {
        let _guard = KeeperGuard(shared);
        let mut last_beat = Instant::now();
        let mut last_sync = Instant::now();
        let mut listen_again_at: Option<Instant> = None;
        loop {
            let mut wait = LONGEST_WAIT
                .min(self.beat_every.saturating_sub(last_beat.elapsed()))
                .min(RESYNC_EVERY.saturating_sub(last_sync.elapsed()))
                .min(self.pruning.as_ref().map_or(LONGEST_WAIT, Pruning::due_in))
                .min(self.gauges.as_ref().map_or(LONGEST_WAIT, Gauges::due_in));
            if shared.outage.heartbeats_stale() {
                wait = wait.min(STALE_BEAT_PAUSE);
            }
            if let Some(at) = listen_again_at {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            let Some(results) = self.wait_for_results(shared, wait) else {
                return;
            };
            if !results.is_empty() {
                if let Some(pause) = self.write_results(shared, results) {
                    // The database is unreachable: the results wait (put back in the queue,
                    // the threads' operations still held) for it to answer again.
                    std::thread::sleep(pause);
                    continue;
                }
            }
            shared.written();
            // After an outage the held heartbeats are refreshed at once (every STALE_BEAT_PAUSE
            // until it works): until then the worker's own claims skip the lost-worker look.
            let stale = shared.outage.heartbeats_stale() && last_beat.elapsed() >= STALE_BEAT_PAUSE;
            if stale || last_beat.elapsed() >= self.beat_every {
                last_beat = Instant::now();
                self.beat(shared);
            }
            let due = listen_again_at.is_none_or(|at| Instant::now() >= at);
            if self.conn.listen && due {
                self.conn.search_socket_again();
                listen_again_at = self.read_notifications(shared);
            }
            if last_sync.elapsed() >= RESYNC_EVERY {
                last_sync = Instant::now();
                self.sync_clock();
            }
            self.prune_step();
            self.report_gauges();
        }
    }
}

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// The results handed over, after waiting up to `wait` for some: asleep on the listening
    /// socket and the bell if it can, else on the condition variable (looking for
    /// notifications every [`NOTIFICATION_CHECK`] if it listens without a socket). `None` once
    /// every worker thread has returned and every result is written.
    fn wait_for_results(&mut self, shared: &Shared, wait: Duration) -> Option<Vec<Finished>> {
        let listening = self.conn.listen;
        match (self.conn.socket(), shared.bell()) {
            (Some(socket), Some(bell)) if listening => {
                if shared.keeper_sleeps() {
                    let woken = socket::wait(Some(socket), bell, wait);
                    shared.keeper_woke();
                    if woken == Woken::SocketGone {
                        tracing::debug!(
                            "the listening socket is closed; polling until reconnected"
                        );
                        self.conn.forget_socket();
                    }
                }
                shared.take_results(Duration::ZERO)
            }
            _ if listening => shared.take_results(wait.min(NOTIFICATION_CHECK)),
            _ => shared.take_results(wait),
        }
    }

    /// Reads the database's clock again (it drifts from this machine's); on an error, the last
    /// reading stands.
    fn sync_clock(&mut self) {
        let synced = self
            .conn
            .connect()
            .and_then(|(conn, _)| Ok(self.clock.sync(conn.storage())?));
        if let Err(error) = synced {
            tracing::debug!(%error, "could not read the database's clock; keeping the last offset");
        }
    }
}

/// Tells the worker threads when the keeper is gone, also by a panic (a bug), so none waits
/// for it forever.
struct KeeperGuard<'a>(&'a Shared);

impl Drop for KeeperGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.keeper_failed(Error::WorkerPanicked);
            self.0.request_stop();
        }
        self.0.keeper_ended();
    }
}
