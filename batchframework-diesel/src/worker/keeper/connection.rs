//! The keeper's own connection, taken from the worker's pool, and what the keeper knows about
//! it: whether it listens for new-work notifications, and how large one statement may be.
//!
//! A connection that fails is dropped and a fresh one taken at the next use, listening again,
//! so one lost connection costs the keeper a retry, not the worker.

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

use crate::backend::{statement_budget, Storage, WorkerConnection, WorkerStorage};
use crate::error::{Error, Result};
use crate::worker::outage::is_connection_trouble;

/// The keeper's connection, opened on demand.
pub(super) struct KeeperConnection<C: WorkerConnection> {
    pool: Pool<ConnectionManager<C>>,
    conn: Option<PooledConnection<ConnectionManager<C>>>,
    /// Asked for, and supported by the backend; the connection (re)subscribes when opened.
    pub(super) listen: bool,
    /// The most bytes one statement may have, where the backend limits it (MySQL/MariaDB).
    statement_budget: Option<usize>,
    /// Whether this connection's session holds the pruning lock (see `prune`).
    pruning_lock: bool,
}

impl<C> KeeperConnection<C>
where
    C: WorkerConnection,
{
    /// Takes the keeper's connection from `pool` and, with `listen`, subscribes it to new-work
    /// notifications before any worker thread starts, so none is missed.
    pub(super) fn open(pool: Pool<ConnectionManager<C>>, listen: bool) -> Result<Self> {
        let mut keeper = KeeperConnection {
            pool,
            conn: None,
            listen,
            statement_budget: None,
            pruning_lock: false,
        };
        keeper.connect()?;
        Ok(keeper)
    }

    /// The connection, opened (and subscribed) if need be, with the statement size budget.
    pub(super) fn connect(&mut self) -> Result<(&mut C, Option<usize>)> {
        if self.conn.is_none() {
            let mut conn = self.pool.get().map_err(Error::Pool)?;
            if self.listen {
                // A backend without notifications says so once; the worker then only polls.
                self.listen = conn.listen_for_work()?;
            }
            self.statement_budget = conn.storage().max_packet_bytes()?.map(statement_budget);
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((&mut **conn, self.statement_budget)),
            None => Err(Error::Internal(
                "the keeper's connection was missing right after it was opened",
            )),
        }
    }

    /// Drops a connection that failed; the next use takes a fresh one.
    /// Whether `error`, from a call on this connection, means the database cannot be reached.
    pub(super) fn is_lost(&mut self, error: &Error) -> bool {
        is_connection_trouble(error, self.conn.as_deref_mut())
    }

    pub(super) fn discard(&mut self) {
        self.stop_listening();
        self.unlock_pruning();
        self.conn = None;
    }

    /// Takes the pruning lock on this connection's session, without waiting; whether it got
    /// it.
    pub(super) fn lock_pruning(&mut self) -> Result<bool> {
        let (conn, _) = self.connect()?;
        self.pruning_lock = WorkerStorage::try_lock_pruning(conn)?;
        Ok(self.pruning_lock)
    }

    /// Whether the current connection holds the pruning lock.
    pub(super) fn holds_pruning_lock(&self) -> bool {
        self.pruning_lock && self.conn.is_some()
    }

    /// Releases the pruning lock, if held, before the connection goes back to the pool (which
    /// keeps its session, and would keep the lock). Should this fail, the connection is broken
    /// and its session, with the lock, is gone.
    pub(super) fn unlock_pruning(&mut self) {
        if let (true, Some(conn)) = (self.pruning_lock, self.conn.as_mut()) {
            let _ = WorkerStorage::unlock_pruning(&mut **conn);
        }
        self.pruning_lock = false;
    }

    /// Unsubscribes the connection before it goes back to the pool, so that whoever takes it
    /// next does not collect notifications. Should this fail, the connection is broken, and the
    /// pool's next health check replaces it.
    fn stop_listening(&mut self) {
        if let (true, Some(conn)) = (self.listen, self.conn.as_mut()) {
            let _ = WorkerStorage::stop_listening(&mut **conn);
        }
    }
}

impl<C> Drop for KeeperConnection<C>
where
    C: WorkerConnection,
{
    fn drop(&mut self) {
        self.stop_listening();
        self.unlock_pruning();
    }
}
