//! Workers: claim asynchronous operations from the database and run them, with leases,
//! heartbeats, fencing and retries. They coordinate only through the table, so any number of
//! threads and processes can share one database without a broker.
//!
//! * **Claim**: `SELECT ... FOR UPDATE SKIP LOCKED` in small batches on PostgreSQL and
//!   MySQL/MariaDB (an immediate transaction on SQLite), by priority then age, honouring
//!   `run_after`; each claimed operation becomes `running`, locked by the worker, `attempts + 1`.
//! * **Lease**: a heartbeat thread refreshes the held operations; one whose holder stopped
//!   beating for longer than the lease (killed, disconnected) is claimed again, or, once its
//!   `max_attempts` are spent, finished `failed` as "worker lost". None stays `running` forever.
//! * **Fencing**: every finish and release is `WHERE locked_by = me AND status = 'running'`, so
//!   a worker that lost its lease cannot overwrite the new holder's result.
//! * **Retries**: a failed run is released back to `unprocessed` with an exponential backoff
//!   until `max_attempts`; each earlier attempt's result is kept in the output data.
//!
//! On SQLite, give the pool's connections a busy timeout (`PRAGMA busy_timeout = 10000`, with an
//! r2d2 connection customizer): the worker's threads, its heartbeat and the application take
//! turns at SQLite's single write lock, and without a timeout a turn that is not free at once
//! fails with "database is locked".
//!
//! Each claim is a `tracing` debug span (`claim`), and each operation an info span (`run`, with
//! `operation.id`, `operation.type`, `attempt` and `worker`) that logs how it ended.
//!
//! [`Worker::start`] runs threads that poll for due work until [`WorkerHandle::shutdown`] (or
//! SIGINT/SIGTERM, with [`WorkerHandle::stop_on_signals`]): claiming stops, running actions
//! finish within a timeout, and operations claimed but not started go back to the queue.
//! [`Worker::run_until_idle`] drains what is due and returns, for tests and cron-style runs.
//!
//! Not built yet: LISTEN/NOTIFY wake-up on PostgreSQL (workers poll on every backend).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use serde_json::{json, Value};

use crate::backend::storage::ClaimedChange;
use crate::backend::{BatchConnection, UtcDateTime};
use crate::error::{Error, Result};
use crate::operation::{BatchOperation, OperationResult, Status};
use crate::registry::{run_actions, ActionGroupResult, Registry};

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
    lease: Duration,
    batch_size: i64,
    poll_interval: Duration,
}

/// State the threads of a started worker share with its handle.
#[derive(Default)]
struct Shared {
    /// Shared with the signal handlers of `stop_on_signals`.
    stop: Arc<AtomicBool>,
    stop_heartbeat: AtomicBool,
    held: Mutex<HashSet<i64>>,
    counters: Counters,
}

/// Controls a worker started with [`Worker::start`].
pub struct WorkerHandle {
    shared: Arc<Shared>,
    joins: Vec<std::thread::JoinHandle<Result<()>>>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("threads", &self.joins.len())
            .finish()
    }
}

impl WorkerHandle {
    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// Makes SIGINT and SIGTERM stop claiming new work, as [`shutdown`](Self::shutdown) does;
    /// then call `shutdown` (for example once [`is_stopping`](Self::is_stopping) turns true) to
    /// wait for the running actions.
    pub fn stop_on_signals(&self) -> Result<()> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&self.shared.stop))
                .map_err(Error::Signal)?;
        }
        Ok(())
    }

    /// Whether the worker has been told to stop.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Stops claiming, lets running actions finish for up to `timeout`, releases operations
    /// claimed but not started, and returns what the worker did. Threads still running an action
    /// after `timeout` are left to finish on their own; should the process exit first, their
    /// operations are recovered by other workers after the lease.
    pub fn shutdown(self, timeout: Duration) -> Result<WorkerStats> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + timeout;
        // The heartbeat thread was started last; it stops after the workers.
        let mut threads = self.joins;
        let heartbeat = threads.pop();
        let mut first_error = None;
        for thread in threads {
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let result = thread.join().unwrap_or(Err(Error::WorkerPanicked));
                if let (Err(error), None) = (result, &first_error) {
                    first_error = Some(error);
                }
            }
        }
        self.shared.stop_heartbeat.store(true, Ordering::SeqCst);
        if let Some(heartbeat) = heartbeat {
            let _ = heartbeat.join();
        }
        first_error.map_or(Ok(self.shared.counters.snapshot()), Err)
    }
}

impl<C> Worker<C>
where
    C: BatchConnection + R2D2Connection + Send + 'static,
{
    /// A worker for every queue of `registry`, with connections from `pool`, a 30-second lease
    /// and claims of up to 10 operations at a time. Its name (`locked_by`) is the host's name,
    /// the process id and a random suffix.
    pub fn new(registry: Arc<Registry<C>>, pool: Pool<ConnectionManager<C>>) -> Self {
        let queues = registry.queues().map(str::to_owned).collect();
        Worker {
            registry,
            pool,
            name: default_name(),
            queues,
            lease: Duration::from_secs(30),
            batch_size: 10,
            poll_interval: Duration::from_secs(1),
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

    /// How long a held operation may go without a heartbeat before others take it over.
    /// Heartbeats are sent every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How many operations one claim takes at most.
    pub fn batch_size(mut self, size: u16) -> Self {
        self.batch_size = i64::from(size.max(1));
        self
    }

    /// How often an idle thread looks for due work again (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Starts `threads` worker threads that keep claiming due work, polling when there is
    /// none, until the returned handle shuts them down.
    pub fn start(self, threads: usize) -> WorkerHandle {
        let worker = Arc::new(self);
        let shared = Arc::new(Shared::default());
        let mut joins = Vec::new();
        for _ in 0..threads.max(1) {
            let (worker, shared) = (Arc::clone(&worker), Arc::clone(&shared));
            joins.push(std::thread::spawn(move || worker.serve(&shared, false)));
        }
        {
            let (worker, shared) = (Arc::clone(&worker), Arc::clone(&shared));
            joins.push(std::thread::spawn(move || {
                worker.heartbeat_loop(&shared.held, &shared.stop_heartbeat);
                Ok(())
            }));
        }
        WorkerHandle { shared, joins }
    }

    /// One worker thread: claim and run until stopped, or, with `until_idle`, until a claim
    /// comes back empty; otherwise sleep `poll_interval` while idle. On stop, operations claimed
    /// but not started are released, their attempt not counted.
    fn serve(&self, shared: &Shared, until_idle: bool) -> Result<()> {
        let mut conn = self.pool.get().map_err(|e| Error::Pool(e.to_string()))?;
        while !shared.stop.load(Ordering::SeqCst) {
            let claimed = self.claim(&mut conn)?;
            if claimed.is_empty() {
                if until_idle {
                    return Ok(());
                }
                let mut slept = Duration::ZERO;
                while slept < self.poll_interval && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                    slept += Duration::from_millis(10);
                }
                continue;
            }
            lock(&shared.held).extend(claimed.iter().map(BatchOperation::id));
            let mut claimed = claimed.into_iter();
            for operation in claimed.by_ref() {
                let id = operation.id();
                let outcome = self.process(&mut conn, operation);
                lock(&shared.held).remove(&id);
                shared.counters.count(outcome?);
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            for operation in claimed {
                lock(&shared.held).remove(&operation.id());
                self.release_unstarted(&mut conn, &operation)?;
            }
        }
        Ok(())
    }

    fn claim(&self, conn: &mut C) -> Result<Vec<BatchOperation>> {
        let now = Utc::now().trunc_subsecs(6);
        let stale_before = now - chrono::Duration::from_std(self.lease).unwrap_or_default();
        Ok(retry_on_deadlock(|| {
            let _span = tracing::debug_span!("claim", worker = %self.name).entered();
            conn.claim_operations(&self.name, &self.queues, now, stale_before, self.batch_size)
        })?)
    }

    /// Gives back an operation claimed but never started, as if it had not been claimed.
    fn release_unstarted(&self, conn: &mut C, operation: &BatchOperation) -> Result<()> {
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
        self.fenced(conn, operation.id(), &change, Outcome::Retried)?;
        Ok(())
    }

    /// Runs `threads` worker threads until no operation is due, and returns what they did.
    pub fn run_until_idle(&self, threads: usize) -> Result<WorkerStats> {
        let shared = Shared::default();
        std::thread::scope(|scope| {
            let heartbeat =
                scope.spawn(|| self.heartbeat_loop(&shared.held, &shared.stop_heartbeat));
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| scope.spawn(|| self.serve(&shared, true)))
                .collect();
            let mut first_error = None;
            for worker in workers {
                let result = worker.join().unwrap_or(Err(Error::WorkerPanicked));
                if let (Err(error), None) = (result, &first_error) {
                    first_error = Some(error);
                }
            }
            shared.stop_heartbeat.store(true, Ordering::SeqCst);
            let _ = heartbeat.join();
            first_error.map_or(Ok(()), Err)
        })?;
        Ok(shared.counters.snapshot())
    }

    /// Runs one claimed operation and writes its outcome, fenced by `locked_by`.
    fn process(&self, conn: &mut C, operation: BatchOperation) -> Result<Outcome> {
        let span = tracing::info_span!(
            "run",
            operation.id = operation.id(),
            operation.r#type = operation.operation_type(),
            attempt = operation.attempts(),
            worker = %self.name,
        );
        let _entered = span.enter();
        let outcome = self.process_in_span(conn, operation);
        match &outcome {
            Ok(Outcome::Fenced) => {
                tracing::warn!("lost the operation to another worker; result not written")
            }
            Ok(outcome) => tracing::info!(?outcome, "finished"),
            Err(error) => tracing::error!(%error, "could not record the outcome"),
        }
        outcome
    }

    fn process_in_span(&self, conn: &mut C, operation: BatchOperation) -> Result<Outcome> {
        if operation.attempts() > operation.max_attempts() {
            let output = json!({ "error": "worker lost", "attempts": operation.attempts() - 1 });
            return self.finish(
                conn,
                &operation,
                OperationResult::Failed,
                &output,
                Outcome::Lost,
            );
        }
        let Some(group) = self.registry.group(operation.operation_type()) else {
            let output = json!({
                "error": format!("no action group is registered as `{}`", operation.operation_type())
            });
            return self.finish(
                conn,
                &operation,
                OperationResult::Failed,
                &output,
                Outcome::Failed,
            );
        };
        let result = run_actions(conn, group, &operation);
        let output = with_previous_attempts(&operation, &result);
        if !result.failed() {
            return self.finish(
                conn,
                &operation,
                OperationResult::Successful,
                &output,
                Outcome::Succeeded,
            );
        }
        if operation.attempts() >= operation.max_attempts() {
            return self.finish(
                conn,
                &operation,
                OperationResult::Failed,
                &output,
                Outcome::Failed,
            );
        }
        // Back off exponentially: backoff, 2·backoff, 4·backoff, ...
        let exponent = u32::try_from(operation.attempts().saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let delay = group
            .backoff()
            .saturating_mul(2u32.saturating_pow(exponent));
        let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let text = output.to_string();
        let change = ClaimedChange {
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            finished_datetime: None,
            output_data_json: &text,
            run_after: Some(UtcDateTime(run_after).clamped()),
            locked_by: None,
            heartbeat_datetime: None,
            attempts: operation.attempts(),
        };
        Ok(self.fenced(conn, operation.id(), &change, Outcome::Retried)?)
    }

    fn finish(
        &self,
        conn: &mut C,
        operation: &BatchOperation,
        result: OperationResult,
        output: &Value,
        outcome: Outcome,
    ) -> Result<Outcome> {
        let text = output.to_string();
        let change = ClaimedChange {
            status: Status::Finished,
            result,
            finished_datetime: Some(UtcDateTime(Utc::now().trunc_subsecs(6))),
            output_data_json: &text,
            run_after: operation.run_after().map(UtcDateTime),
            locked_by: Some(&self.name),
            heartbeat_datetime: operation.heartbeat_datetime().map(UtcDateTime),
            attempts: operation.attempts(),
        };
        Ok(self.fenced(conn, operation.id(), &change, outcome)?)
    }

    /// Writes `change` only if this worker still holds the operation.
    fn fenced(
        &self,
        conn: &mut C,
        id: i64,
        change: &ClaimedChange<'_>,
        outcome: Outcome,
    ) -> diesel::QueryResult<Outcome> {
        Ok(
            if retry_on_deadlock(|| conn.change_claimed(id, &self.name, change))? == 1 {
                outcome
            } else {
                Outcome::Fenced
            },
        )
    }

    /// Refreshes the heartbeat of held operations every third of the lease until `done`, from a
    /// connection of its own.
    fn heartbeat_loop(&self, held: &Mutex<HashSet<i64>>, done: &AtomicBool) {
        let tick = Duration::from_millis(50);
        let every = self.lease / 3;
        let mut waited = Duration::ZERO;
        let mut conn = None;
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < every {
                continue;
            }
            waited = Duration::ZERO;
            let ids: Vec<i64> = lock(held).iter().copied().collect();
            if ids.is_empty() {
                continue;
            }
            if conn.is_none() {
                conn = self.pool.get().ok();
            }
            if let Some(conn) = conn.as_mut() {
                // A failed beat is retried at the next tick; the lease covers a few misses.
                let _ = conn.heartbeat(&self.name, &ids, Utc::now().trunc_subsecs(6));
            }
        }
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

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed,
    Retried,
    Lost,
    Fenced,
}

#[derive(Default)]
struct Counters([AtomicUsize; 5]);

impl Counters {
    fn count(&self, outcome: Outcome) {
        self.0[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |o: Outcome| self.0[o as usize].load(Ordering::Relaxed);
        WorkerStats {
            succeeded: get(Outcome::Succeeded),
            failed: get(Outcome::Failed),
            retried: get(Outcome::Retried),
            lost: get(Outcome::Lost),
            fenced: get(Outcome::Fenced),
        }
    }
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
