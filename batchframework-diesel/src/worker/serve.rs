//! The serve loop of one worker thread: claim a batch of due operations, run each, and end
//! every attempt, until the worker stops (or, for `run_until_idle`, until nothing is due).
//!
//! How an attempt ends is decided in the `attempt` module; a final result is handed to the
//! keeper, which group-commits it, and a retry or an unstarted operation is released here, on
//! the thread (the `release` module says why). The threads' supervision lives here too: each
//! holds one pooled connection, and a database error in one stops the whole worker.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;
use diesel::r2d2::{ConnectionManager, PooledConnection, R2D2Connection};

use crate::backend::{UtcDateTime, WorkerConnection, WorkerStorage};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::registry::engine::run_actions;

use super::attempt::{self, Attempt, Decision};
use super::claim_size::ClaimSize;
use super::keeper::Keeper;
use super::metrics::{self, Labels};
use super::outage::{is_connection_trouble, ConnectionState};
use super::release::Release;
use super::shared::{self, Finished, ServingGuard, Shared};
use super::Worker;
use crate::backend::retry_on_deadlock;
use crate::status::OperationResult;

/// How often `run_until_idle` looks again when a claim came back empty while work is due.
const IDLE_RECHECKS: u32 = 100;

/// The pause between those looks: 100 × 10 ms lets a concurrent claim commit, and bounds the
/// wait on work an application keeps locked.
const IDLE_RECHECK_PAUSE: Duration = Duration::from_millis(10);

impl<C> Worker<C>
where
    C: WorkerConnection,
{
    /// Starts one thread of a started worker, serving until the worker stops.
    pub(super) fn spawn_serving(
        worker: &Arc<Self>,
        shared: &Arc<Shared>,
    ) -> JoinHandle<Result<()>> {
        let (worker, shared) = (Arc::clone(worker), Arc::clone(shared));
        std::thread::spawn(move || {
            let _serving = ServingGuard(&shared);
            worker.serve(&shared, false)
        })
    }

    /// Runs `keeper` and `threads` threads serving until nothing is due, and waits for all of
    /// them; the first error of a thread (a panic counts as [`Error::WorkerPanicked`]), else
    /// the keeper's.
    pub(super) fn serve_until_idle(
        &self,
        threads: usize,
        keeper: Keeper<C>,
        shared: &Shared,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let keeper = scope.spawn(|| keeper.run(shared));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let _serving = ServingGuard(shared);
                        self.serve(shared, true)
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
        })
    }

    /// One worker thread: claim and run until stopped, or, with `until_idle`, until a claim
    /// comes back empty; otherwise wait up to `poll_interval` (or a wake-up) while idle. On
    /// stop, operations claimed but not started are released, their attempt not counted.
    ///
    /// A database error ends the thread and stops the whole worker: the error is returned by
    /// `run_until_idle` or the handle's `shutdown`, and `is_stopping` turns true.
    pub(super) fn serve(&self, shared: &Shared, until_idle: bool) -> Result<()> {
        let served = self.serve_until_stopped(shared, until_idle);
        if served.is_err() {
            shared.request_stop();
        }
        served
    }

    fn serve_until_stopped(&self, shared: &Shared, until_idle: bool) -> Result<()> {
        let mut connection = ConnectionState::new();
        let mut interrupted = Interrupted::default();
        let mut claim_size = ClaimSize::new(
            self.largest_claim(),
            <C as WorkerStorage>::CLAIMS_SIZED_BY_RUN_TIME,
        );
        loop {
            let served = self.serve_connected(
                shared,
                until_idle,
                &mut connection,
                &mut interrupted,
                &mut claim_size,
            );
            let Err(Trouble::Connection(error)) = served else {
                return served.map_err(Trouble::into_error);
            };
            let pause = connection.failed(&shared.outage, &error, "worker thread");
            if shared.outage.given_up() || shared.is_stopping() {
                // What it could not give back is taken over once its lease expires.
                interrupted
                    .attempts
                    .iter()
                    .for_each(|op: &BatchOperation| shared.release(op.id()));
                interrupted
                    .claims
                    .iter()
                    .for_each(|_| shared.outage.claim_settled());
                return if shared.is_stopping() {
                    Ok(())
                } else {
                    Err(error)
                };
            }
            shared.pause_unless_stopping(pause);
        }
    }

    /// Serves on one connection from the pool until the worker stops, the drain ends, or the
    /// connection fails. What a lost connection left unended (see [`Interrupted`]) is given back
    /// first thing on the next one.
    fn serve_connected(
        &self,
        shared: &Shared,
        until_idle: bool,
        connection: &mut ConnectionState,
        interrupted: &mut Interrupted,
        claim_size: &mut ClaimSize,
    ) -> std::result::Result<(), Trouble> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| Trouble::Connection(Error::Pool(e)))?;
        self.give_back(&mut conn, shared, interrupted)?;
        let mut rechecks = 0;
        while !shared.is_stopping() {
            let generation = shared.generation();
            let (now, stale_before) = self.claim_times();
            // After an outage, this worker's own held operations look lost until the keeper
            // has refreshed their heartbeats: no look for lost ones until then.
            let stale_before = shared.outage.may_look_for_lost().then_some(stale_before);
            let claimed = match self.claim(&mut conn, now, stale_before, claim_size.next()) {
                Ok(claimed) => claimed,
                Err(error) => {
                    let trouble = Trouble::of(error, &mut *conn);
                    if matches!(trouble, Trouble::Connection(_)) {
                        // Its commit may have happened, unheard of.
                        interrupted.claims.push(now);
                        shared.outage.claim_unsettled();
                    }
                    return Err(trouble);
                }
            };
            connection.worked(&shared.outage);
            claimed.iter().for_each(metrics::claimed);
            if claimed.is_empty() {
                if until_idle {
                    // Due work that could not be claimed is held by a concurrent claim (or an
                    // application's lock): look again shortly, for a while.
                    let claimable = Trouble::check(self.has_claimable(&mut conn), &mut *conn)?;
                    if rechecks < IDLE_RECHECKS && claimable {
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
            let (started, count) = (std::time::Instant::now(), claimed.len());
            self.run_claimed(&mut conn, shared, claimed, &mut interrupted.attempts)?;
            claim_size.ran(count, started.elapsed());
        }
        Ok(())
    }

    /// Gives back what a lost connection left unended: the attempts it cut short, and the
    /// operations of claims whose commit was never confirmed (still running under this worker
    /// with the claim's heartbeat). Each release is fenced: one another worker took over
    /// meanwhile stays theirs.
    fn give_back(
        &self,
        conn: &mut PooledConnection<ConnectionManager<C>>,
        shared: &Shared,
        interrupted: &mut Interrupted,
    ) -> std::result::Result<(), Trouble> {
        while let Some(at) = interrupted.claims.last().copied() {
            let unheard = Trouble::check(
                conn.claimed_at(&self.name, at).map_err(Error::from),
                &mut **conn,
            )?;
            shared.hold(unheard.iter().map(BatchOperation::id));
            interrupted.attempts.extend(unheard);
            interrupted.claims.pop();
            shared.outage.claim_settled();
        }
        while let Some(operation) = interrupted.attempts.last() {
            let release = Release::unstarted(operation);
            let released = self.release(conn, shared, operation, &release);
            Trouble::check(released.map_err(Error::from), &mut **conn)?;
            interrupted.attempts.pop();
        }
        Ok(())
    }

    fn run_claimed(
        &self,
        conn: &mut PooledConnection<ConnectionManager<C>>,
        shared: &Shared,
        claimed: Vec<BatchOperation>,
        interrupted: &mut Vec<BatchOperation>,
    ) -> std::result::Result<(), Trouble> {
        let mut claimed = claimed.into_iter();
        let mut ran = Ok(());
        for operation in claimed.by_ref() {
            let processed = self
                .process(conn, shared, &operation)
                .and_then(|()| self.close_leaked_transactions(conn).map_err(Unended::later));
            if let Err(unended) = processed {
                ran = Err(Trouble::of(unended.error, &mut **conn));
                if unended.still_held && matches!(ran, Err(Trouble::Connection(_))) {
                    interrupted.push(operation);
                }
                break;
            }
            if shared.is_stopping() {
                break;
            }
        }
        let rest: Vec<BatchOperation> = claimed.collect();
        if matches!(ran, Err(Trouble::Connection(_))) {
            // Given back once the connection is back, still held (and its lease kept) until then.
            interrupted.extend(rest);
            return ran;
        }
        for operation in &rest {
            // After an error this is best effort: what cannot be given back is taken over by
            // other workers once the lease expires.
            let released = self.release(conn, shared, operation, &Release::unstarted(operation));
            if let Err(error) = released {
                shared.release(operation.id());
                if ran.is_ok() {
                    ran = Err(Trouble::of(Error::from(error), &mut **conn));
                }
            }
        }
        ran
    }

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

    /// Claims a batch. It looks for lost workers' operations only when the worker's last look
    /// is old enough (see [`LostCheck`](super::LostCheck)), or may have left some behind.
    fn claim(
        &self,
        conn: &mut C,
        now: chrono::DateTime<Utc>,
        stale_before: Option<chrono::DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<BatchOperation>> {
        let look_for_lost = stale_before.is_some() && self.lost_check.due();
        let stale_before = stale_before.unwrap_or(now);
        let claimed = retry_on_deadlock(|| {
            let _span = tracing::debug_span!("claim", worker = %self.name).entered();
            conn.claim_operations(
                &self.name,
                &self.queues,
                &self.operation_types,
                now,
                look_for_lost.then_some(stale_before),
                limit,
            )
        })?;
        if look_for_lost && claimed.len() >= usize::try_from(limit).unwrap_or(1) {
            // A full batch may have left lost operations behind (they come first): look again
            // at the next claim.
            self.lost_check.again();
        }
        Ok(claimed)
    }

    /// Whether work is due although a claim came back empty (see
    /// [`WorkerStorage::has_claimable`](crate::backend::WorkerStorage::has_claimable)); `run_until_idle`
    /// asks before it calls the queue drained.
    fn has_claimable(&self, conn: &mut C) -> Result<bool> {
        let (now, stale_before) = self.claim_times();
        Ok(conn.has_claimable(&self.queues, &self.operation_types, now, stale_before)?)
    }

    /// Now, and the heartbeat time before which a holder counts as lost.
    fn claim_times(&self) -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
        let now = self.clock.now();
        let stale_before = now - chrono::Duration::from_std(self.lease).unwrap_or_default();
        (now, stale_before)
    }

    /// Runs one claimed operation, then hands a final result to the keeper or releases the
    /// operation for a retry.
    fn process(
        &self,
        conn: &mut C,
        shared: &Shared,
        operation: &BatchOperation,
    ) -> std::result::Result<(), Unended> {
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
                    finished_at: UtcDateTime(self.clock.now()),
                    outcome,
                    labels: Labels::of(operation),
                    parent_id: operation.parent_id(),
                });
                Ok(())
            }
            Decision::Retry { output, run_after } => {
                // Written here, not group-committed by the keeper: see the `release` module.
                let output = output.to_string();
                let retry = Release::retry(operation.attempts(), &output, run_after);
                let outcome = self
                    .release(conn, shared, operation, &retry)
                    .map_err(|error| Unended::now(Error::from(error)))?;
                tracing::info!(?outcome, "ran");
                shared.count(outcome);
                metrics::ended(
                    &Labels::of(operation),
                    outcome,
                    OperationResult::NotAvailable,
                );
                Ok(())
            }
            Decision::Interrupted => {
                tracing::info!("the connection was lost during the run; it runs again");
                // The error the pool reports when it cannot serve: connection trouble.
                let ping = R2D2Connection::ping(conn).err().map(Error::Database);
                Err(Unended::now(ping.unwrap_or(Error::Internal(
                    "the worker thread's connection was lost while the action ran",
                ))))
            }
        }
    }

    fn decide(&self, conn: &mut C, operation: &BatchOperation) -> Decision {
        let attempt = Attempt::of(operation);
        if let Some(lost) = attempt.worker_lost() {
            return lost;
        }
        let Some(group) = self.registry.group(operation.operation_type()) else {
            return attempt::no_group(operation.operation_type());
        };
        let started = std::time::Instant::now();
        let result = run_actions(conn, group, operation);
        metrics::ran(operation, started.elapsed());
        // An action that failed on a connection that died under it failed because of the
        // outage, not of itself: the attempt does not count, and it runs again.
        if result.failed() && R2D2Connection::ping(conn).is_err() {
            return Decision::Interrupted;
        }
        attempt.after_run(group.backoff(), &result, self.clock.now())
    }
}

/// What a worker thread's lost connection left unended, given back on its next connection.
#[derive(Default)]
struct Interrupted {
    /// Claimed operations whose attempt was cut short: still held (their lease kept).
    attempts: Vec<BatchOperation>,
    /// The times (`now`) of claims that failed with the connection: their commit may have
    /// happened without the worker hearing of it.
    claims: Vec<chrono::DateTime<Utc>>,
}

/// Why a worker thread stopped serving on its connection.
#[derive(Debug)]
enum Trouble {
    /// The database cannot be reached: wait, and serve again on a new connection.
    Connection(Error),
    /// Anything else: the worker stops.
    Fatal(Error),
}

impl Trouble {
    fn of<D: R2D2Connection>(error: Error, conn: &mut D) -> Trouble {
        if is_connection_trouble(&error, Some(conn)) {
            Trouble::Connection(error)
        } else {
            Trouble::Fatal(error)
        }
    }

    fn check<T, D: R2D2Connection>(
        result: Result<T>,
        conn: &mut D,
    ) -> std::result::Result<T, Trouble> {
        result.map_err(|error| Trouble::of(error, conn))
    }

    fn into_error(self) -> Error {
        match self {
            Trouble::Connection(error) | Trouble::Fatal(error) => error,
        }
    }
}

/// An operation's attempt that did not end: the error, and whether the operation is still held
/// (its claim neither finished nor given back).
struct Unended {
    error: Error,
    still_held: bool,
}

impl Unended {
    /// The attempt itself could not end.
    fn now(error: Error) -> Self {
        Unended {
            error,
            still_held: true,
        }
    }

    /// The attempt ended (its result handed over); what failed came after.
    fn later(error: Error) -> Self {
        Unended {
            error,
            still_held: false,
        }
    }
}
