//! Workers: claim asynchronous operations from the database and run them, with leases,
//! heartbeats, fencing and retries. They coordinate only through the table, so any number of
//! threads and processes can share one database without a broker.
//!
//! * **Claim**: `SELECT ... FOR UPDATE SKIP LOCKED` in small batches on PostgreSQL and
//!   MySQL/MariaDB (an immediate transaction on SQLite), by priority then age, honouring
//!   `run_after`, of the operation types the worker's registry has only (others wait for a
//!   worker that knows them); each claimed operation becomes `running`, locked by the worker,
//!   `attempts + 1`.
//! * **Lease**: the keeper thread refreshes the held operations' heartbeats; one whose holder stopped
//!   beating for longer than the lease (killed, disconnected) is claimed again (claims look for
//!   such operations a tenth of a lease apart, at most a second), or, once its `max_attempts`
//!   are spent, finished `failed` as "worker lost". None stays `running` forever.
//! * **Fencing**: every finish and release is `WHERE status = 'running' AND locked_by = me AND
//!   attempts = the claimed attempt`, so a worker that lost its lease cannot overwrite the new
//!   holder's result, even when the new holder is another thread of the same worker.
//! * **Retries**: a failed run is released back to `unprocessed` with an exponential backoff
//!   until `max_attempts`; each earlier attempt's result is kept in the output data.
//! * **Group commit**: worker threads hand finished operations to the worker's keeper thread,
//!   which writes all that are waiting in one transaction (see the `keeper` module), and go on.
//! * **Wake-up**: on PostgreSQL, the migrations' triggers NOTIFY new due work and the keeper
//!   LISTENs, so an idle worker starts new work within milliseconds; the other backends, and
//!   work that becomes due later (`run_after`), are found by polling every `poll_interval`.
//! * **Paused queues** ([`admin::pause_queue`](crate::admin::pause_queue)) are not claimed
//!   from; each claim locks its queues' settings rows in share mode, so a pause waits for the
//!   claims in flight and no claim happens after it returns (operations claimed before it in a
//!   batch still run).
//! * **Metrics**, with the `metrics` feature: counters, a duration histogram and queue gauges
//!   through the `metrics` facade (the [`metrics`] module lists them).
//! * **Pruning** ([`Worker::prune_finished_after`]): the keeper deletes old finished
//!   operations in small batches between its other work, one worker at a time.
//! * **One clock**: leases, heartbeats, due times and finish times are read on the database
//!   server's clock (its offset from the worker's machine measured at start and every minute),
//!   so workers on machines whose clocks disagree agree on what is due and whose lease expired.
//!   A delay given when work is queued (`RunArgs::delay`) counts from the queuing machine's
//!   clock; keep those in time (NTP) or pass `run_at` computed from the database's.
//! * **Outages**: a worker rides through a database restart or a cut connection, waiting with
//!   backoff and carrying on ([`Worker::give_up_after`] says how long it waits).
//!
//! On SQLite, give the pool's connections a busy timeout (`PRAGMA busy_timeout = 10000`, with an
//! r2d2 connection customizer): the worker's threads, its keeper and the application take
//! turns at SQLite's single write lock, and without a timeout a turn that is not free at once
//! fails with "database is locked". Put the file in WAL mode (`PRAGMA journal_mode = WAL`),
//! so that readers (a dashboard) do not block the workers' writes. Use a database file: each
//! connection to `:memory:` opens a database of its own, so a worker's threads would not see
//! the application's operations.
//!
//! A worker takes `threads + 1` connections from its pool: one per worker thread and one for
//! the keeper. Size the pool for them and for whatever else shares it.
//!
//! Each claim is a `tracing` debug span (`claim`), each operation an info span (`run`, with
//! `operation.id`, `operation.type`, `attempt` and `worker`) that logs how it ended, and each
//! group of results written a debug span (`finish`).
//!
//! [`Worker::start`] runs threads that wait for due work until [`WorkerHandle::shutdown`] (or
//! SIGINT/SIGTERM, with [`WorkerHandle::stop_on_signals`]): claiming stops, running actions
//! finish within a timeout, and operations claimed but not started go back to the queue.
//! [`Worker::run_until_idle`] drains what is due and returns, for tests and cron-style runs.
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use batchframework_diesel::registry::{action_fn, ActionGroup, Registry};
//! use batchframework_diesel::worker::Worker;
//! use diesel::r2d2::{ConnectionManager, Pool};
//! use diesel::PgConnection;
//!
//! let registry: Arc<Registry<PgConnection>> = Arc::new(
//!     Registry::builder()
//!         .group(ActionGroup::new("send-email").asynchronous().action(action_fn(
//!             "send",
//!             |ctx| Ok(serde_json::json!({ "sent_for": ctx.operation().id() })),
//!         )))
//!         .build()?,
//! );
//! let pool = Pool::builder()
//!     .max_size(5) // 4 worker threads and the keeper
//!     .build(ConnectionManager::<PgConnection>::new("postgres://localhost/app"))?;
//! let worker = Worker::new(registry, pool).start(4)?;
//! worker.stop_on_signals()?;
//! while !worker.is_stopping() {
//!     std::thread::sleep(Duration::from_millis(200));
//! }
//! let stats = worker.shutdown(Duration::from_secs(30))?;
//! println!("{stats:?}");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "postgres"))]
//! # fn main() {}
//! ```

// The parts, in the order an operation meets them: `serve` (a worker thread's loop: claim,
// run, end each attempt), `attempt` (the pure decision of how an attempt ends), `release` (the
// one write path for a claim given back: retries and unstarted work), `keeper` (the keeper
// thread: group-committed results, heartbeats, wake-ups), `shared` (the state the threads
// share) and `handle` (a started worker's controls). This file holds the public builder.
mod attempt;
mod claim_size;
mod clock;
mod handle;
mod keeper;
pub mod metrics;
mod outage;
mod release;
mod serve;
mod shared;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};

use crate::backend::{Storage, WorkerStorage};
use crate::error::{Error, Result};
use crate::registry::Registry;

pub use crate::backend::WorkerConnection;
pub use handle::{WorkerHandle, RESULT_GRACE};
use keeper::Keeper;
use shared::Shared;

/// How often a worker with [`Worker::prune_finished_after`] starts a round of pruning.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How many operations one of the keeper's prune statements deletes at most: small enough
/// that results wait for it only a few milliseconds.
pub const PRUNE_BATCH: u32 = 1_000;

/// What a run of the workers did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Operations finished `successful`.
    pub succeeded: usize,
    /// Operations finished `failed` (all attempts spent, or no such action group).
    pub failed: usize,
    /// Failed attempts released for a later retry.
    pub retried: usize,
    /// Operations whose worker was lost and whose attempts were spent: finished `failed`.
    pub lost: usize,
    /// Results not written because another worker had taken the operation over.
    pub fenced: usize,
    /// Times one of the worker's connections (a thread's or the keeper's) worked again after
    /// the database had become unreachable to it.
    pub reconnects: usize,
    /// Times the worker's keeper or one of its idle threads woke up: for new work, a result to
    /// write, a duty come due, or a timeout. A measure of what an idle worker costs: on
    /// PostgreSQL the keeper sleeps on its listening connection's socket, so an idle worker
    /// wakes a few times a second (each thread every `poll_interval`, the keeper at most every
    /// half second), not hundreds.
    pub wakeups: usize,
}

impl WorkerStats {
    /// Adds `other`'s counts to these.
    fn add(&mut self, other: &WorkerStats) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
        self.lost += other.lost;
        self.fenced += other.fenced;
        self.reconnects += other.reconnects;
        self.wakeups += other.wakeups;
    }
}

/// A set of worker threads sharing a connection pool and a registry.
pub struct Worker<C: R2D2Connection + 'static> {
    registry: Arc<Registry<C>>,
    pool: Pool<ConnectionManager<C>>,
    name: String,
    queues: Vec<String>,
    /// The registry's operation types: the only ones claimed, so operations of a type this
    /// worker cannot run stay queued for a worker that can (another service on the same queue,
    /// or a newer release during a rolling deploy).
    operation_types: Vec<String>,
    lease: Duration,
    batch_size: i64,
    poll_interval: Duration,
    listen: bool,
    /// How long finished operations are kept when the keeper prunes them.
    prune_after: Option<Duration>,
    /// How often the keeper reports the queue gauges, if it does.
    queue_metrics_every: Option<Duration>,
    /// How long to wait for an unreachable database before stopping (`None`: forever).
    give_up_after: Option<Duration>,
    /// The database server's clock, which leases and due times are read on.
    clock: Arc<clock::Clock>,
    /// When the threads' claims next look for lost workers' operations.
    lost_check: LostCheck,
}

/// When a claim looks for operations whose worker was lost (running, heartbeat older than the
/// lease), shared by a worker's threads. Such an operation has waited a whole lease already, so
/// looking a tenth of a lease apart (between 10 ms and a second) delays it little, and spares
/// every other claim a statement. An idle thread's check for work looks every time.
#[derive(Debug)]
pub(crate) struct LostCheck {
    every: Duration,
    next: std::sync::Mutex<std::time::Instant>,
}

impl LostCheck {
    fn new(lease: Duration) -> Self {
        LostCheck {
            every: (lease / 10).clamp(Duration::from_millis(10), Duration::from_secs(1)),
            next: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// Whether this claim looks; if so, the next look is due an interval later.
    pub(crate) fn due(&self) -> bool {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if now < *next {
            return false;
        }
        *next = now + self.every;
        true
    }

    /// Makes the next claim look again.
    pub(crate) fn again(&self) {
        *self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }
}

impl<C> Worker<C>
where
    C: WorkerConnection,
{
    /// A worker for every queue of `registry`, with connections from `pool`, a 30-second lease,
    /// claims of up to 10 operations at a time, and a poll every second. Its name (`locked_by`)
    /// is the host's name, the process id and a random suffix.
    pub fn new(registry: Arc<Registry<C>>, pool: Pool<ConnectionManager<C>>) -> Self {
        let queues = registry.queues().map(str::to_owned).collect();
        let operation_types = registry.operation_types().map(str::to_owned).collect();
        Worker {
            registry,
            pool,
            name: default_name(),
            queues,
            operation_types,
            lease: Duration::from_secs(30),
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            listen: true,
            prune_after: None,
            queue_metrics_every: None,
            give_up_after: None,
            clock: Arc::default(),
            lost_check: LostCheck::new(Duration::from_secs(30)),
        }
    }

    /// The name stored in `locked_by` (at most 200 characters are used).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into().chars().take(200).collect();
        self
    }

    /// Only these queues.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How long a held operation may go without a heartbeat before others take it over
    /// (between 300 ms and 24 hours). Heartbeats are sent every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(300), Duration::from_secs(24 * 3600));
        self.lost_check = LostCheck::new(self.lease);
        self
    }

    /// How many operations one claim takes at most (default 100). Each thread claims as many
    /// as it expects to run in about 20 ms, judged by its last claim, up to this: quick
    /// operations by the dozen or hundred (sharing a claim's transaction and the keeper's
    /// commit), slow ones one at a time, so none waits in one thread's batch while another
    /// could run it. On SQLite every claim asks for this many, 10 at most: each claim takes the
    /// database's one write lock, which is shared more fairly in small, steady steps.
    pub fn batch_size(mut self, size: u16) -> Self {
        self.batch_size = i64::from(size.max(1));
        self
    }

    /// How often an idle thread looks for due work again (default 1 s; between 10 ms and 24
    /// hours). On PostgreSQL new work also wakes it at once (see [`listen`](Self::listen));
    /// polling still finds delayed work that became due, and covers a lost notification.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval =
            interval.clamp(Duration::from_millis(10), Duration::from_secs(24 * 3600));
        self
    }

    /// How long the worker waits for an unreachable database before it stops (default: it
    /// never stops for that).
    ///
    /// When the database goes away (a restart, a failover, a connection cut by a proxy), each
    /// thread and the keeper drop their connection, wait with an exponential backoff (100 ms
    /// doubling to 10 s, with jitter) and carry on once the database answers again; results
    /// wait in memory meanwhile. The operations a thread could not end are given back when it
    /// reconnects (their attempt not counted) unless another worker took them over; those whose
    /// results were waiting are finished if the worker still holds them. After this long without
    /// a database the worker stops as it does on any other error: [`WorkerHandle::is_stopping`]
    /// turns true and [`WorkerHandle::shutdown`] returns the error.
    pub fn give_up_after(mut self, patience: Duration) -> Self {
        self.give_up_after = Some(patience);
        self
    }

    /// Makes the worker's machine's clock read `skew` off, to show that the worker runs on the
    /// database's clock whatever its own says. For tests.
    #[doc(hidden)]
    pub fn local_clock_skew(mut self, skew: chrono::Duration) -> Self {
        self.clock = Arc::new(clock::Clock::with_skew(skew));
        self
    }

    /// Whether a started worker LISTENs for new-work notifications (PostgreSQL; default on).
    /// Turn it off behind a pooler that does not keep sessions, such as PgBouncer in
    /// transaction mode, where LISTEN does not work; the worker then only polls.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Has the keeper of a started worker delete finished operations once they are older than
    /// `age` (by `finished_datetime`): a round when the worker starts and then every
    /// [`PRUNE_EVERY`], in batches of [`PRUNE_BATCH`] between its other work, so results keep
    /// being written while it prunes. One worker at a time prunes: a session lock on the
    /// keeper's connection (an advisory lock per schema on PostgreSQL, a named lock per
    /// database on MySQL/MariaDB; on SQLite, whose writers take turns, none is needed), which
    /// a worker that dies releases with its connection. Off by default; see
    /// [`Prune`](crate::Prune) to prune from your own schedule instead.
    pub fn prune_finished_after(mut self, age: Duration) -> Self {
        self.prune_after = Some(age);
        self
    }

    /// Has the keeper report the depth (`batchframework_queue_depth`, due, delayed and running,
    /// each counted up to 10,000) and lag (`batchframework_queue_lag_seconds`) of each of the
    /// worker's queues through the `metrics` facade every `interval` (between a second and a
    /// day): a
    /// few index reads per queue. Off by default; the counters and the duration histogram (see
    /// the [`metrics`] module) need no setting.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn queue_metrics_every(mut self, interval: Duration) -> Self {
        self.queue_metrics_every =
            Some(interval.clamp(Duration::from_secs(1), Duration::from_secs(24 * 3600)));
        self
    }

    /// Starts `threads` worker threads that keep claiming due work, waiting when there is
    /// none, until the returned handle shuts them down. Fails if the pool cannot give the
    /// `threads + 1` connections the worker needs, or the keeper's connection cannot be opened.
    pub fn start(self, threads: usize) -> Result<WorkerHandle> {
        let threads = threads.max(1);
        self.check_pool(threads)?;
        self.add_queues()?;
        let keeper = Keeper::open(&self, self.listen)?;
        let worker = Arc::new(self);
        let shared = Arc::new(Shared::new(
            threads,
            worker.max_unwritten(threads),
            worker.give_up_after,
        ));
        let threads = (0..threads)
            .map(|_| Self::spawn_serving(&worker, &shared))
            .collect();
        let keeper = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                keeper.run(&shared);
                Ok(())
            })
        };
        Ok(WorkerHandle {
            shared,
            threads,
            keeper,
            signals: Mutex::default(),
        })
    }

    /// Runs `threads` worker threads until no operation is due, and returns what they did once
    /// every result is written.
    ///
    /// A batch whose last children this run finished enqueues its callbacks, and a workflow
    /// step whose last dependencies it finished is released, as the run's last results are
    /// written, after its threads found nothing due: the run then starts again, so that it
    /// returns with the callbacks and the released steps run too.
    pub fn run_until_idle(&self, threads: usize) -> Result<WorkerStats> {
        let threads = threads.max(1);
        self.check_pool(threads)?;
        self.add_queues()?;
        let mut total = WorkerStats::default();
        loop {
            let keeper = Keeper::open(self, false)?;
            let shared = Shared::new(threads, self.max_unwritten(threads), self.give_up_after);
            self.serve_until_idle(threads, keeper, &shared)?;
            total.add(&shared.stats());
            if shared.made_due_so_far() == 0 {
                return Ok(total);
            }
        }
    }

    /// Gives each of the worker's queues its settings row (if it has none), which its claims
    /// lock in share mode: a pause of the queue then waits for the claims in flight.
    /// Reads the database's clock, and records the worker's queues.
    fn add_queues(&self) -> Result<()> {
        let mut conn = self.pool.get().map_err(Error::Pool)?;
        self.clock.sync(conn.storage())?;
        Ok(conn.storage().add_queues(&self.queues, self.clock.now())?)
    }

    /// Refuses a pool too small for the worker threads and the keeper: they would wait for
    /// each other's connections until the pool's timeout.
    fn check_pool(&self, threads: usize) -> Result<()> {
        let needed = threads + 1;
        let max_size = usize::try_from(self.pool.max_size()).unwrap_or(usize::MAX);
        if max_size < needed {
            return Err(Error::PoolTooSmall {
                threads,
                needed,
                max_size,
            });
        }
        Ok(())
    }

    /// Results that may wait for the keeper before worker threads wait: two claims' worth per
    /// thread, enough to keep the threads busy while the keeper commits.
    fn max_unwritten(&self, threads: usize) -> usize {
        usize::try_from(self.largest_claim()).unwrap_or(1) * threads * 2
    }

    /// The most operations one claim takes: `batch_size`, or less where the backend says so.
    pub(super) fn largest_claim(&self) -> i64 {
        <C as WorkerStorage>::LARGEST_CLAIM
            .map_or(self.batch_size, |largest| largest.min(self.batch_size))
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}-{}-{nanos:08x}", std::process::id())
}
