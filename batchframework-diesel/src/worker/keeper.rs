//! The keeper: one thread per worker, with one connection of its own, that does the worker's
//! bookkeeping so its worker threads only claim and run.
//!
//! * **Results, group-committed.** Worker threads hand over each finished operation and go on
//!   to the next; the keeper writes every result waiting in one transaction, one `UPDATE` per
//!   chunk. A commit costs a disk flush, and one flush per group instead of one per operation is
//!   what lets a worker finish thousands of short operations a second. Each write is still
//!   fenced. On MySQL/MariaDB chunks also stay under `max_allowed_packet`; a result too large
//!   for any statement is recorded as a failure saying so, instead of stopping the worker.
//! * **Heartbeats** for every operation held, every third of the lease, until its result is
//!   written.
//! * **Wake-ups** (PostgreSQL): the connection LISTENs for the new-work notifications the
//!   migrations' triggers send, and the keeper wakes idle worker threads when one names a queue
//!   of theirs. Diesel reads notifications without blocking, so the keeper looks every
//!   [`NOTIFICATION_CHECK`]: a read of what already arrived on the socket, not a query.
//!
//! The keeper runs until every worker thread has returned and every result is written, even
//! past a shutdown's timeout, so an action that outlives it still gets its result recorded.

use std::time::{Duration, Instant};

use diesel::r2d2::{ConnectionManager, PooledConnection, R2D2Connection};
use serde_json::json;

use crate::backend::storage::{FinishedRow, FINISH_ROW_OVERHEAD};
use crate::backend::{now, statement_budget, BatchConnection, Storage};
use crate::error::{Error, Result};
use crate::operation::OperationResult;

use super::shared::{Finished, Outcome, Shared};
use super::{retry_on_deadlock, Worker};

/// How often a listening keeper reads the notifications that have arrived.
const NOTIFICATION_CHECK: Duration = Duration::from_millis(5);

/// How long a keeper that does not listen waits for results before it looks at the heartbeats.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// How long a keeper that lost its listening connection waits before it tries again.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// The keeper's connection, and what it knows about it.
pub(super) struct KeeperConnection<C: BatchConnection + R2D2Connection + 'static> {
    conn: Option<PooledConnection<ConnectionManager<C>>>,
    /// Asked for, and supported by the backend; the connection (re)subscribes when opened.
    listen: bool,
    /// The most bytes one statement may have, where the backend limits it (MySQL/MariaDB).
    statement_budget: Option<usize>,
}

impl<C> KeeperConnection<C>
where
    C: BatchConnection + R2D2Connection + 'static,
{
    /// Takes the keeper's connection from the worker's pool and, with `listen`, subscribes it
    /// to new-work notifications before any worker thread starts, so none is missed.
    pub(super) fn open(worker: &Worker<C>, listen: bool) -> Result<Self> {
        let mut keeper = KeeperConnection {
            conn: None,
            listen,
            statement_budget: None,
        };
        keeper.connect(worker)?;
        Ok(keeper)
    }

    /// The connection, opened (and subscribed) if need be, with the statement size budget.
    fn connect(&mut self, worker: &Worker<C>) -> Result<(&mut C, Option<usize>)> {
        if self.conn.is_none() {
            let mut conn = worker.pool.get().map_err(|e| Error::Pool(e.to_string()))?;
            if self.listen {
                // A backend without notifications says so once; the worker then only polls.
                self.listen = conn.listen_for_work()?;
            }
            self.statement_budget = conn.max_packet_bytes()?.map(statement_budget);
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((&mut **conn, self.statement_budget)),
            None => Err(Error::Pool("no keeper connection".to_owned())),
        }
    }

    /// Drops a connection that failed; the next use takes a fresh one.
    fn discard(&mut self) {
        self.stop_listening();
        self.conn = None;
    }

    /// Unsubscribes the connection before it goes back to the pool, so that whoever takes it
    /// next does not collect notifications. Should this fail, the connection is broken, and the
    /// pool's next health check replaces it.
    fn stop_listening(&mut self) {
        if let (true, Some(conn)) = (self.listen, self.conn.as_mut()) {
            let _ = Storage::stop_listening(&mut **conn);
        }
    }
}

impl<C> Drop for KeeperConnection<C>
where
    C: BatchConnection + R2D2Connection + 'static,
{
    fn drop(&mut self) {
        self.stop_listening();
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

impl<C> Worker<C>
where
    C: BatchConnection + R2D2Connection + Send + 'static,
{
    /// The keeper thread's loop; see the module documentation.
    pub(super) fn keep(&self, shared: &Shared, mut keeper: KeeperConnection<C>) {
        let _guard = KeeperGuard(shared);
        let beat_every = self.lease / 3;
        let mut last_beat = Instant::now();
        let mut listen_again_at = None;
        loop {
            let wait = if keeper.listen {
                NOTIFICATION_CHECK
            } else {
                IDLE_CHECK.min(beat_every.saturating_sub(last_beat.elapsed()))
            };
            let Some(results) = shared.take_results(wait) else {
                return;
            };
            if !results.is_empty() {
                self.write_results(shared, &mut keeper, results);
            }
            shared.written();
            if last_beat.elapsed() >= beat_every {
                last_beat = Instant::now();
                self.beat(shared, &mut keeper);
            }
            let due = listen_again_at.is_none_or(|at| Instant::now() >= at);
            if keeper.listen && due {
                listen_again_at = self.read_notifications(shared, &mut keeper);
            }
        }
    }

    /// Writes `results` and counts them. The group is one transaction; should it fail twice
    /// (the second time on a fresh connection), each result is tried alone, and those that
    /// still fail stop the worker with the error: their operations stay `running` and are
    /// taken over by other workers once the lease expires.
    fn write_results(
        &self,
        shared: &Shared,
        keeper: &mut KeeperConnection<C>,
        mut results: Vec<Finished>,
    ) {
        // Rows in id order: concurrent writers lock them in the same order.
        results.sort_by_key(|finished| finished.id);
        if let Ok((_, Some(budget))) = keeper.connect(self) {
            for finished in &mut results {
                refuse_if_too_large(finished, budget);
            }
        }
        let rows: Vec<FinishedRow<'_>> = results
            .iter()
            .map(|finished| FinishedRow {
                id: finished.id,
                attempt: finished.attempt,
                result: finished.result,
                finished_at: finished.finished_at,
                output_data_json: &finished.output,
            })
            .collect();
        let _span =
            tracing::debug_span!("finish", worker = %self.name, operations = rows.len()).entered();
        let group = self.try_write(keeper, &rows).or_else(|_| {
            keeper.discard();
            self.try_write(keeper, &rows)
        });
        let written: Vec<Option<bool>> = match group {
            Ok(written) => written.into_iter().map(Some).collect(),
            Err(error) => {
                tracing::warn!(%error, "could not write a group of results; writing each alone");
                rows.iter()
                    .map(|row| match self.try_write(keeper, std::slice::from_ref(row)) {
                        Ok(written) => written.first().copied(),
                        Err(error) => {
                            tracing::error!(operation.id = row.id, %error, "could not record the result; stopping");
                            keeper.discard();
                            shared.keeper_failed(error);
                            None
                        }
                    })
                    .collect()
            }
        };
        for (finished, written) in results.iter().zip(&written) {
            match written {
                Some(true) => shared.count(finished.outcome),
                Some(false) => {
                    tracing::warn!(
                        operation.id = finished.id,
                        "lost the operation to another worker; result not written"
                    );
                    shared.count(Outcome::Fenced);
                }
                None => {}
            }
            shared.release(finished.id);
        }
        if written.iter().any(Option::is_none) {
            shared.request_stop();
        }
    }

    fn try_write(
        &self,
        keeper: &mut KeeperConnection<C>,
        rows: &[FinishedRow<'_>],
    ) -> Result<Vec<bool>> {
        let (conn, budget) = keeper.connect(self)?;
        Ok(retry_on_deadlock(|| {
            conn.finish_claimed(&self.name, rows, budget)
        })?)
    }

    /// Refreshes the heartbeat of every held operation. A failed beat is tried again at the
    /// next one; the lease covers a few misses.
    fn beat(&self, shared: &Shared, keeper: &mut KeeperConnection<C>) {
        let ids = shared.held_ids();
        if ids.is_empty() {
            return;
        }
        let beaten = keeper
            .connect(self)
            .and_then(|(conn, _)| Ok(conn.heartbeat(&self.name, &ids, now())?));
        if let Err(error) = beaten {
            tracing::warn!(%error, "heartbeat failed; retrying at the next one");
            keeper.discard();
        }
    }

    /// Wakes the idle worker threads if new work was announced on one of their queues. A lost
    /// connection is replaced (listening again) and everyone is woken, in case a notification
    /// was lost with it; if no connection can be had, returns when to try again (polling goes
    /// on meanwhile).
    fn read_notifications(
        &self,
        shared: &Shared,
        keeper: &mut KeeperConnection<C>,
    ) -> Option<Instant> {
        let read = keeper
            .connect(self)
            .and_then(|(conn, _)| Ok(conn.work_notifications()?));
        match read {
            Ok(queues) => {
                if queues.iter().any(|queue| self.queues.contains(queue)) {
                    shared.wake_all();
                }
                None
            }
            Err(error) => {
                tracing::warn!(%error, "lost the notification connection; reconnecting");
                keeper.discard();
                if keeper.connect(self).is_ok() {
                    shared.wake_all();
                    None
                } else {
                    Some(Instant::now() + RELISTEN_AFTER)
                }
            }
        }
    }
}

/// A result whose output cannot fit in any statement the server accepts
/// (`max_allowed_packet`) is recorded as a failure that says so: the operation ends, visibly,
/// instead of failing to be written again and again.
fn refuse_if_too_large(finished: &mut Finished, budget: usize) {
    let size = finished.output.len();
    if size + FINISH_ROW_OVERHEAD <= budget {
        return;
    }
    finished.result = OperationResult::Failed;
    finished.outcome = Outcome::Failed;
    finished.output = json!({
        "error": format!(
            "the output data ({size} bytes) is too large for one statement on this server \
             (max_allowed_packet); it was not stored. Raise max_allowed_packet, or have the \
             action return less"
        )
    })
    .to_string();
}
