//! The keeper's own connection, taken from the worker's pool, and what the keeper knows about
//! it: whether it listens for new-work notifications, and how large one statement may be.
//!
//! A connection that fails is dropped and a fresh one taken at the next use, listening again,
//! so one lost connection costs the keeper a retry, not the worker.
//!
//! A listening connection's socket is looked for each time it is opened (see
//! `backend/socket.rs`), with a second connection borrowed from the pool for a moment, so the
//! keeper can sleep on it; it is forgotten with the connection. When the pool has no
//! connection to lend (its worker threads hold every other one, as after a reconnect with a
//! pool of exactly `threads + 1`), the keeper looks for notifications every few milliseconds
//! and tries again every [`SOCKET_SEARCH_EVERY`].

use std::time::{Duration, Instant};

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

use crate::backend::socket::WaitSocket;

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
    /// The listening connection's socket, if it could be found.
    socket: Option<WaitSocket>,
    /// When to look for the socket again, if it was not found.
    next_socket_search: Option<Instant>,
    /// The connection started listening (again), or its socket was looked for, since the
    /// keeper last asked: notifications may have been missed or read while looking.
    relistened: bool,
}

/// How often a keeper listening without its socket looks for it again.
const SOCKET_SEARCH_EVERY: Duration = Duration::from_secs(30);

/// How long the keeper waits for the second connection that helps find its socket; without
/// one (a pool exhausted by the worker threads) it goes on without the socket.
const NOTIFIER_WAIT: Duration = Duration::from_secs(1);

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
            socket: None,
            next_socket_search: None,
            relistened: false,
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
                if self.listen {
                    self.relistened = true;
                    let notifier = self.pool.get_timeout(NOTIFIER_WAIT).ok();
                    self.socket = self.find_socket(&mut conn, notifier);
                }
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

    /// The socket of `conn`, a listening connection, if it can be found; an error finding it
    /// only costs the keeper its sleep (a broken connection shows at its next use).
    fn find_socket(
        &mut self,
        conn: &mut PooledConnection<ConnectionManager<C>>,
        notifier: Option<PooledConnection<ConnectionManager<C>>>,
    ) -> Option<WaitSocket> {
        self.next_socket_search = Some(Instant::now() + SOCKET_SEARCH_EVERY);
        let mut notifier = notifier?;
        match conn.wait_socket(&mut notifier) {
            Ok(Some(socket)) => Some(socket),
            Ok(None) => {
                tracing::debug!(
                    "could not find the listening connection's socket; looking for \
                     notifications every few milliseconds instead"
                );
                None
            }
            Err(error) => {
                tracing::debug!(%error, "could not look for the listening connection's socket");
                None
            }
        }
    }

    /// Whether the connection started listening again, or was looked at for its socket, since
    /// the last call: if so, notifications may have been missed and idle threads should look.
    pub(super) fn take_relistened(&mut self) -> bool {
        std::mem::take(&mut self.relistened)
    }

    /// The listening connection's socket, if it was found.
    pub(super) fn socket(&self) -> Option<&WaitSocket> {
        self.socket.as_ref()
    }

    /// Looks for the listening connection's socket again if it was not found and it is time
    /// to, with a connection the pool can lend without waiting.
    pub(super) fn search_socket_again(&mut self) {
        let due = self
            .next_socket_search
            .is_some_and(|at| Instant::now() >= at);
        if !self.listen || self.socket.is_some() || !due {
            return;
        }
        if let Some(mut conn) = self.conn.take() {
            let notifier = self.pool.try_get();
            self.socket = self.find_socket(&mut conn, notifier);
            self.conn = Some(conn);
            self.relistened = true;
        }
    }

    /// Stops sleeping on the socket (it was reported closed): the keeper looks for
    /// notifications every few milliseconds until it takes a fresh connection.
    pub(super) fn forget_socket(&mut self) {
        self.socket = None;
    }

    /// Drops a connection that failed; the next use takes a fresh one.
    /// Whether `error`, from a call on this connection, means the database cannot be reached.
    pub(super) fn is_lost(&mut self, error: &Error) -> bool {
        is_connection_trouble(error, self.conn.as_deref_mut())
    }

    pub(super) fn discard(&mut self) {
        self.socket = None;
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
