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
//! Not built yet: LISTEN/NOTIFY wake-up and a long-running `start()` with signal handling.
//! [`Worker::run_until_idle`] drains what is due, for tests and cron-style runs.

use std::collections::HashSet;
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

    /// Runs `threads` worker threads until no operation is due, and returns what they did.
    pub fn run_until_idle(&self, threads: usize) -> Result<WorkerStats> {
        let held: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let done = AtomicBool::new(false);
        let counters = Counters::default();
        let outcome = std::thread::scope(|scope| {
            let heartbeat = scope.spawn(|| self.heartbeat_loop(&held, &done));
            // SQLite has one writer, and threads competing for it in one process can starve each
            // other past any busy timeout: one thread does the work there.
            let threads = if C::DIALECT == crate::Dialect::Sqlite {
                1
            } else {
                threads.max(1)
            };
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| self.drain(&held, &counters)))
                .collect();
            let mut first_error = None;
            for worker in workers {
                let result = worker.join().unwrap_or_else(|_| Err(Error::WorkerPanicked));
                if let (Err(error), None) = (result, &first_error) {
                    first_error = Some(error);
                }
            }
            done.store(true, Ordering::SeqCst);
            let _ = heartbeat.join();
            first_error.map_or(Ok(()), Err)
        });
        outcome.map(|()| counters.snapshot())
    }

    /// One thread: claim and run until a claim comes back empty.
    fn drain(&self, held: &Mutex<HashSet<i64>>, counters: &Counters) -> Result<()> {
        let mut conn = self.pool.get().map_err(|e| Error::Pool(e.to_string()))?;
        loop {
            let now = Utc::now().trunc_subsecs(6);
            let stale_before = now - chrono::Duration::from_std(self.lease).unwrap_or_default();
            let claimed = retry_on_deadlock(|| {
                let _span = tracing::debug_span!("claim", worker = %self.name).entered();
                conn.claim_operations(&self.name, &self.queues, now, stale_before, self.batch_size)
            })?;
            if claimed.is_empty() {
                return Ok(());
            }
            lock(held).extend(claimed.iter().map(BatchOperation::id));
            for operation in claimed {
                let id = operation.id();
                let outcome = self.process(&mut *conn, operation);
                lock(held).remove(&id);
                counters.count(outcome?);
            }
        }
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
