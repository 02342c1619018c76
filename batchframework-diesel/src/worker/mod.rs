//! Workers: claim asynchronous operations from the database and run them, with leases,
//! heartbeats, fencing and retries. They coordinate only through the table, so any number of
//! threads and processes can share one database without a broker.
//!
//! * **Claim**: `SELECT ... FOR UPDATE SKIP LOCKED` in small batches on PostgreSQL and
//!   MySQL/MariaDB (an immediate transaction on SQLite), by priority then age, honouring
//!   `run_after`; each claimed operation becomes `running`, locked by the worker, `attempts + 1`.
//! * **Lease**: the keeper thread refreshes the held operations' heartbeats; one whose holder stopped
//!   beating for longer than the lease (killed, disconnected) is claimed again, or, once its
//!   `max_attempts` are spent, finished `failed` as "worker lost". None stays `running` forever.
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
//!
//! On SQLite, give the pool's connections a busy timeout (`PRAGMA busy_timeout = 10000`, with an
//! r2d2 connection customizer): the worker's threads, its keeper and the application take
//! turns at SQLite's single write lock, and without a timeout a turn that is not free at once
//! fails with "database is locked". Use a database file: each connection to `:memory:` opens a
//! database of its own, so a worker's threads would not see the application's operations.
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

mod handle;
mod keeper;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection, R2D2Connection};
use serde_json::{json, Value};

use crate::backend::storage::ClaimedChange;
use crate::backend::{now, BatchConnection, UtcDateTime};
use crate::error::{Error, Result};
use crate::operation::{BatchOperation, OperationResult, Status};
use crate::registry::{run_actions, ActionGroupResult, Registry};

pub use handle::{WorkerHandle, RESULT_GRACE};
use keeper::KeeperConnection;
use shared::{Finished, Outcome, ServingGuard, Shared};

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
}

/// How often `run_until_idle` looks again when a claim came back empty while work is due.
const IDLE_RECHECKS: u32 = 100;

/// The pause between those looks: 100 × 10 ms lets a concurrent claim commit, and bounds the
/// wait on work an application keeps locked.
const IDLE_RECHECK_PAUSE: Duration = Duration::from_millis(10);

/// How the worker ends one attempt at an operation.
enum Decision {
    /// Final: written by the keeper, with the others waiting.
    Finish {
        result: OperationResult,
        output: Value,
        outcome: Outcome,
    },
    /// Back to the queue for another attempt, after `run_after`.
    Retry {
        output: Value,
        run_after: UtcDateTime,
    },
}

impl<C> Worker<C>
where
    C: BatchConnection + R2D2Connection + Send + 'static,
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
            batch_size: 10,
            poll_interval: Duration::from_secs(1),
            listen: true,
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
        self
    }

    /// How many operations one claim takes at most.
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

    /// Whether a started worker LISTENs for new-work notifications (PostgreSQL; default on).
    /// Turn it off behind a pooler that does not keep sessions, such as PgBouncer in
    /// transaction mode, where LISTEN does not work; the worker then only polls.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Starts `threads` worker threads that keep claiming due work, waiting when there is
    /// none, until the returned handle shuts them down. Fails if the pool cannot give the
    /// `threads + 1` connections the worker needs, or the keeper's connection cannot be opened.
    pub fn start(self, threads: usize) -> Result<WorkerHandle> {
        let threads = threads.max(1);
        self.check_pool(threads)?;
        let keeper_conn = KeeperConnection::open(&self, self.listen)?;
        let worker = Arc::new(self);
        let shared = Arc::new(Shared::new(threads, worker.max_unwritten(threads)));
        let spawn_thread = |worker: Arc<Self>, shared: Arc<Shared>| {
            std::thread::spawn(move || {
                let _serving = ServingGuard(&shared);
                worker.serve(&shared, false)
            })
        };
        let threads = (0..threads)
            .map(|_| spawn_thread(Arc::clone(&worker), Arc::clone(&shared)))
            .collect();
        let keeper = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                worker.keep(&shared, keeper_conn);
                Ok(())
            })
        };
        Ok(WorkerHandle {
            shared,
            threads,
            keeper,
        })
    }

    /// Runs `threads` worker threads until no operation is due, and returns what they did once
    /// every result is written.
    pub fn run_until_idle(&self, threads: usize) -> Result<WorkerStats> {
        let threads = threads.max(1);
        self.check_pool(threads)?;
        let keeper_conn = KeeperConnection::open(self, false)?;
        let shared = Shared::new(threads, self.max_unwritten(threads));
        std::thread::scope(|scope| {
            let keeper = scope.spawn(|| self.keep(&shared, keeper_conn));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let _serving = ServingGuard(&shared);
                        self.serve(&shared, true)
                    })
                })
                .collect();
            let mut first_error = None;
            for worker in workers {
                let result = worker.join().unwrap_or(Err(Error::WorkerPanicked));
                if let (Err(error), None) = (result, &first_error) {
                    first_error = Some(error);
                }
            }
            if keeper.join().is_err() {
                first_error.get_or_insert(Error::WorkerPanicked);
            }
            let keeper_error = shared::lock(&shared.keeper_error).take();
            first_error.or(keeper_error).map_or(Ok(()), Err)
        })?;
        Ok(shared.stats())
    }

    /// Refuses a pool too small for the worker threads and the keeper: they would wait for
    /// each other's connections until the pool's timeout.
    fn check_pool(&self, threads: usize) -> Result<()> {
        let needed = threads + 1;
        let max_size = usize::try_from(self.pool.max_size()).unwrap_or(usize::MAX);
        if max_size < needed {
            return Err(Error::Pool(format!(
                "a worker with {threads} thread(s) needs {needed} connections (one per thread \
                 and one for its keeper), but the pool holds at most {max_size}; raise the \
                 pool's max_size or start fewer threads"
            )));
        }
        Ok(())
    }

    /// Results that may wait for the keeper before worker threads wait: two claims' worth per
    /// thread, enough to keep the threads busy while the keeper commits.
    fn max_unwritten(&self, threads: usize) -> usize {
        usize::try_from(self.batch_size).unwrap_or(1) * threads * 2
    }

    /// One worker thread: claim and run until stopped, or, with `until_idle`, until a claim
    /// comes back empty; otherwise wait up to `poll_interval` (or a wake-up) while idle. On
    /// stop, operations claimed but not started are released, their attempt not counted.
    ///
    /// A database error ends the thread and stops the whole worker: the error is returned by
    /// `run_until_idle` or the handle's `shutdown`, and `is_stopping` turns true.
    fn serve(&self, shared: &Shared, until_idle: bool) -> Result<()> {
        let served = self.serve_until_stopped(shared, until_idle);
        if served.is_err() {
            shared.request_stop();
        }
        served
    }

    fn serve_until_stopped(&self, shared: &Shared, until_idle: bool) -> Result<()> {
        let mut conn = self.pool.get().map_err(|e| Error::Pool(e.to_string()))?;
        let mut rechecks = 0;
        while !shared.is_stopping() {
            let generation = shared.generation();
            let claimed = self.claim(&mut conn)?;
            if claimed.is_empty() {
                if until_idle {
                    // Due work that could not be claimed is held by a concurrent claim (or an
                    // application's lock): look again shortly, for a while.
                    if rechecks < IDLE_RECHECKS && self.has_claimable(&mut conn)? {
                        rechecks += 1;
                        std::thread::sleep(IDLE_RECHECK_PAUSE);
                        continue;
                    }
                    return Ok(());
                }
                shared.wait_for_work(generation, self.poll_interval);
                continue;
            }
            rechecks = 0;
            shared.hold(claimed.iter().map(BatchOperation::id));
            self.run_claimed(&mut conn, shared, claimed)?;
        }
        Ok(())
    }

    /// Runs a claimed batch in order, stopping early when the worker stops or an error ends
    /// the thread; what was not started then is given back.
    fn run_claimed(
        &self,
        conn: &mut PooledConnection<ConnectionManager<C>>,
        shared: &Shared,
        claimed: Vec<BatchOperation>,
    ) -> Result<()> {
        let mut started = 0;
        let mut ran = Ok(());
        for operation in &claimed {
            started += 1;
            ran = self
                .process(conn, shared, operation)
                .and_then(|()| self.close_leaked_transactions(conn));
            if ran.is_err() || shared.is_stopping() {
                break;
            }
        }
        for operation in &claimed[started..] {
            // After an error this is best effort: what cannot be given back is taken over by
            // other workers once the lease expires.
            let released = self.release_unstarted(conn, operation);
            shared.release(operation.id());
            if ran.is_ok() {
                ran = released;
            }
        }
        ran
    }

    /// An action that panicked inside `conn.transaction(...)` leaves that transaction open:
    /// Diesel rolls back on an `Err`, not on a panic. The thread's next claim would then run
    /// nested inside it, never committed, holding its row locks. Roll such transactions back;
    /// should that fail (the action broke or lost the connection), the thread cannot go on,
    /// and the error stops the worker.
    fn close_leaked_transactions(&self, conn: &mut C) -> Result<()> {
        use diesel::connection::TransactionManager;
        // `is_broken` is true while a transaction is open or the transaction manager failed.
        let mut levels = 0;
        while R2D2Connection::is_broken(conn) && levels < 64 {
            levels += 1;
            <C as diesel::Connection>::TransactionManager::rollback_transaction(conn)?;
        }
        if levels > 0 {
            tracing::warn!(levels, "an action left a transaction open; rolled it back");
        }
        Ok(())
    }

    fn claim(&self, conn: &mut C) -> Result<Vec<BatchOperation>> {
        let (now, stale_before) = self.claim_times();
        Ok(retry_on_deadlock(|| {
            let _span = tracing::debug_span!("claim", worker = %self.name).entered();
            conn.claim_operations(
                &self.name,
                &self.queues,
                &self.operation_types,
                now,
                stale_before,
                self.batch_size,
            )
        })?)
    }

    /// Whether work is due although a claim came back empty (see
    /// [`Storage::has_claimable`](crate::backend::Storage::has_claimable)); `run_until_idle`
    /// asks before it calls the queue drained.
    fn has_claimable(&self, conn: &mut C) -> Result<bool> {
        let (now, stale_before) = self.claim_times();
        Ok(conn.has_claimable(&self.queues, &self.operation_types, now, stale_before)?)
    }

    /// Now, and the heartbeat time before which a holder counts as lost.
    fn claim_times(&self) -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
        let now = now();
        let stale_before = now - chrono::Duration::from_std(self.lease).unwrap_or_default();
        (now, stale_before)
    }

    /// Gives back an operation claimed but never started, as if it had not been claimed.
    fn release_unstarted(&self, conn: &mut C, operation: &BatchOperation) -> Result<()> {
        // The attempt is not counted: back to what it was before the claim.
        let change = ClaimedChange {
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            finished_datetime: None,
            output_data_json: operation.output_data_json(),
            run_after: operation.run_after().map(UtcDateTime),
            locked_by: None,
            heartbeat_datetime: None,
            attempts: operation.attempts() - 1,
        };
        self.fenced(conn, operation, &change, Outcome::Retried)?;
        Ok(())
    }

    /// Runs one claimed operation, then hands a final result to the keeper or releases the
    /// operation for a retry.
    fn process(&self, conn: &mut C, shared: &Shared, operation: &BatchOperation) -> Result<()> {
        let span = tracing::info_span!(
            "run",
            operation.id = operation.id(),
            operation.r#type = operation.operation_type(),
            attempt = operation.attempts(),
            worker = %self.name,
        );
        let _entered = span.enter();
        match self.decide(conn, operation) {
            Decision::Finish {
                result,
                output,
                outcome,
            } => {
                tracing::info!(?outcome, "ran");
                shared.push_result(Finished {
                    id: operation.id(),
                    attempt: operation.attempts(),
                    result,
                    output: output.to_string(),
                    finished_at: UtcDateTime(now()),
                    outcome,
                });
                Ok(())
            }
            Decision::Retry { output, run_after } => {
                let text = output.to_string();
                let change = ClaimedChange {
                    status: Status::Unprocessed,
                    result: OperationResult::NotAvailable,
                    finished_datetime: None,
                    output_data_json: &text,
                    run_after: Some(run_after),
                    locked_by: None,
                    heartbeat_datetime: None,
                    attempts: operation.attempts(),
                };
                let written = self.fenced(conn, operation, &change, Outcome::Retried);
                shared.release(operation.id());
                let outcome = written?;
                tracing::info!(?outcome, "ran");
                shared.count(outcome);
                Ok(())
            }
        }
    }

    /// Runs the operation's actions, unless it has no group or its worker was lost too often,
    /// and decides how the attempt ends.
    fn decide(&self, conn: &mut C, operation: &BatchOperation) -> Decision {
        if operation.attempts() > operation.max_attempts() {
            return Decision::Finish {
                result: OperationResult::Failed,
                output: json!({ "error": "worker lost", "attempts": operation.attempts() - 1 }),
                outcome: Outcome::Lost,
            };
        }
        let Some(group) = self.registry.group(operation.operation_type()) else {
            let error = format!(
                "no action group is registered as `{}`",
                operation.operation_type()
            );
            return Decision::Finish {
                result: OperationResult::Failed,
                output: json!({ "error": error }),
                outcome: Outcome::Failed,
            };
        };
        let result = run_actions(conn, group, operation);
        let output = with_previous_attempts(operation, &result);
        if !result.failed() {
            return Decision::Finish {
                result: OperationResult::Successful,
                output,
                outcome: Outcome::Succeeded,
            };
        }
        if operation.attempts() >= operation.max_attempts() {
            return Decision::Finish {
                result: OperationResult::Failed,
                output,
                outcome: Outcome::Failed,
            };
        }
        // Back off exponentially: backoff, 2·backoff, 4·backoff, ...
        let exponent = u32::try_from(operation.attempts().saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let delay = group
            .backoff()
            .saturating_mul(2u32.saturating_pow(exponent));
        let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        Decision::Retry {
            output,
            run_after: UtcDateTime(run_after).clamped(),
        }
    }

    /// Writes `change` only if this worker still holds the operation at the attempt it claimed.
    fn fenced(
        &self,
        conn: &mut C,
        operation: &BatchOperation,
        change: &ClaimedChange<'_>,
        outcome: Outcome,
    ) -> diesel::QueryResult<Outcome> {
        let (id, attempt) = (operation.id(), operation.attempts());
        Ok(
            if retry_on_deadlock(|| conn.change_claimed(id, attempt, &self.name, change))? == 1 {
                outcome
            } else {
                Outcome::Fenced
            },
        )
    }
}

/// The output of an attempt, with the results of earlier attempts kept under
/// `previous_attempts`.
fn with_previous_attempts(operation: &BatchOperation, result: &ActionGroupResult) -> Value {
    let mut output = serde_json::to_value(result).unwrap_or(Value::Null);
    if operation.attempts() > 1 {
        let earlier: Option<Value> = operation.output_data().ok().flatten();
        let mut previous = match earlier {
            Some(Value::Object(mut earlier)) => {
                let older = earlier.remove("previous_attempts");
                let mut list = match older {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                list.push(Value::Object(earlier));
                list
            }
            _ => Vec::new(),
        };
        if let Value::Object(map) = &mut output {
            map.insert(
                "previous_attempts".into(),
                Value::Array(std::mem::take(&mut previous)),
            );
        }
    }
    output
}

/// Runs `step` again when the database chose it as a deadlock victim (InnoDB does so when
/// concurrent claims and finishes lock index ranges in different orders); the victim's
/// transaction was rolled back whole, so a retry is safe.
fn retry_on_deadlock<T>(
    mut step: impl FnMut() -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    let mut tries = 0;
    loop {
        match step() {
            Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
                if tries < 10 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5 * tries));
            }
            other => return other,
        }
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
