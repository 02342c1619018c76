//! The keeper: one thread per worker, with one connection of its own, that does the worker's
//! bookkeeping so its worker threads only claim and run.
//!
//! * **Results, group-committed.** Worker threads hand over each finished operation and go on
//!   to the next; the keeper writes every result waiting in one transaction. A commit costs a
//!   disk flush, and one flush per group instead of one per operation is what lets a worker
//!   finish thousands of short operations a second. Each write is still fenced.
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

use crate::backend::storage::FinishedRow;
use crate::backend::{BatchConnection, Storage};
use crate::error::{Error, Result};

use super::shared::{Finished, Outcome, Shared};
use super::{retry_on_deadlock, Worker};

/// How often a listening keeper reads the notifications that have arrived.
const NOTIFICATION_CHECK: Duration = Duration::from_millis(2);

/// How long a keeper that does not listen waits for results before it looks at the heartbeats.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// The keeper's connection, and whether it listens for new work.
pub(super) struct KeeperConnection<C: BatchConnection + R2D2Connection + 'static> {
    conn: Option<PooledConnection<ConnectionManager<C>>>,
    /// Asked for, and supported by the backend; the connection (re)subscribes when opened.
    listen: bool,
}

impl<C> KeeperConnection<C>
where
    C: BatchConnection + R2D2Connection + 'static,
{
    /// Takes the keeper's connection from the worker's pool and, with `listen`, subscribes it
    /// to new-work notifications before any worker thread starts, so none is missed.
    pub(super) fn open(worker: &Worker<C>, listen: bool) -> Result<Self> {
        let mut keeper = KeeperConnection { conn: None, listen };
        keeper.connect(worker)?;
        Ok(keeper)
    }

    fn connect(&mut self, worker: &Worker<C>) -> Result<&mut C> {
        if self.conn.is_none() {
            let mut conn = worker.pool.get().map_err(|e| Error::Pool(e.to_string()))?;
            if self.listen {
                // A backend without notifications says so once; the worker then only polls.
                self.listen = conn.listen_for_work()?;
            }
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(&mut **conn),
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

impl<C> Worker<C>
where
    C: BatchConnection + R2D2Connection + Send + 'static,
{
    /// The keeper thread's loop; see the module documentation.
    pub(super) fn keep(&self, shared: &Shared, mut keeper: KeeperConnection<C>) {
        let beat_every = self.lease / 3;
        let mut last_beat = Instant::now();
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
            if last_beat.elapsed() >= beat_every {
                last_beat = Instant::now();
                self.beat(shared, &mut keeper);
            }
            if keeper.listen {
                self.read_notifications(shared, &mut keeper);
            }
        }
    }

    /// Writes `results` in one transaction, and counts them. Should the write fail twice (the
    /// second time on a fresh connection), the worker stops and reports the error; the
    /// operations stay `running` and are taken over by other workers once the lease expires.
    fn write_results(
        &self,
        shared: &Shared,
        keeper: &mut KeeperConnection<C>,
        mut results: Vec<Finished>,
    ) {
        // Rows in id order: concurrent writers lock them in the same order.
        results.sort_by_key(|finished| finished.id);
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
        let mut written = self.try_write(keeper, &rows);
        if written.is_err() {
            keeper.discard();
            written = self.try_write(keeper, &rows);
        }
        match written {
            Ok(written) => {
                for (finished, written) in results.iter().zip(written) {
                    if written {
                        shared.count(finished.outcome);
                    } else {
                        tracing::warn!(
                            operation.id = finished.id,
                            "lost the operation to another worker; result not written"
                        );
                        shared.count(Outcome::Fenced);
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not record the results; stopping");
                keeper.discard();
                shared.keeper_failed(error);
                shared.request_stop();
            }
        }
        for finished in &results {
            shared.release(finished.id);
        }
    }

    fn try_write(
        &self,
        keeper: &mut KeeperConnection<C>,
        rows: &[FinishedRow<'_>],
    ) -> Result<Vec<bool>> {
        let conn = keeper.connect(self)?;
        Ok(retry_on_deadlock(|| conn.finish_claimed(&self.name, rows))?)
    }

    /// Refreshes the heartbeat of every held operation. A failed beat is tried again at the
    /// next one; the lease covers a few misses.
    fn beat(&self, shared: &Shared, keeper: &mut KeeperConnection<C>) {
        let ids = shared.held_ids();
        if ids.is_empty() {
            return;
        }
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
        let beaten = keeper
            .connect(self)
            .and_then(|conn| Ok(conn.heartbeat(&self.name, &ids, now)?));
        if let Err(error) = beaten {
            tracing::warn!(%error, "heartbeat failed; retrying at the next one");
            keeper.discard();
        }
    }

    /// Wakes the idle worker threads if new work was announced on one of their queues. A lost
    /// connection is replaced (listening again) and everyone is woken, in case a notification
    /// was lost with it.
    fn read_notifications(&self, shared: &Shared, keeper: &mut KeeperConnection<C>) {
        let read = keeper
            .connect(self)
            .and_then(|conn| Ok(conn.work_notifications()?));
        match read {
            Ok(queues) => {
                if queues.iter().any(|queue| self.queues.contains(queue)) {
                    shared.wake_all();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "lost the notification connection; reconnecting");
                keeper.discard();
                if keeper.connect(self).is_ok() {
                    shared.wake_all();
                } else {
                    // Keep the loop from spinning while the database is away; polling goes on.
                    std::thread::sleep(self.poll_interval);
                }
            }
        }
    }
}
