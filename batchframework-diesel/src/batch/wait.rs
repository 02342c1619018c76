//! [`BatchOperation::wait`]: blocking until an operation (a batch's parent, or any other) has
//! finished.
//!
//! On PostgreSQL the wait listens for the finish notifications that workers' group commits send
//! (channel `batchframework_finished`, the finished ids as payload) and sleeps on the listening
//! connection's socket (see `backend/socket.rs`), so it wakes when the operation finishes, not
//! at the next poll; it still reads the operation again every [`RECHECK`], for finishes no
//! worker announced (a finish by hand, an operator's cancel). Elsewhere it reads the operation
//! with a backoff from 1 ms to [`LONGEST_POLL`].

use std::time::{Duration, Instant};

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

use crate::backend::socket::{self, Bell, WaitSocket};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::Status;
use crate::worker::WorkerConnection;

/// How often a waiter that listens for notifications reads the operation anyway.
const RECHECK: Duration = Duration::from_secs(1);

/// How often a waiter without a socket to sleep on looks for notifications (locally: no query).
const NOTIFICATION_POLL: Duration = Duration::from_millis(5);

/// The longest pause between two reads where there are no notifications.
const LONGEST_POLL: Duration = Duration::from_millis(200);

impl BatchOperation {
    /// Waits until operation `id` has finished, at most `timeout`, and returns it as finished:
    /// for a web handler that starts a batch and answers with its result when it is quick.
    ///
    /// Takes one connection from `pool` for the wait (on PostgreSQL, briefly a second one, to
    /// find the connection's socket, if the pool has one idle). An operation already finished
    /// costs one query.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimedOut`] when it has not finished in time (it goes on as before);
    /// [`Error::NotFound`] when it does not exist; [`Error::Pool`] when the pool has no
    /// connection to give.
    pub fn wait<C: WorkerConnection>(
        pool: &Pool<ConnectionManager<C>>,
        id: i64,
        timeout: Duration,
    ) -> Result<BatchOperation> {
        let started = Instant::now();
        let mut conn = pool.get().map_err(Error::Pool)?;
        // Already finished: no need to listen.
        let operation = BatchOperation::find(&mut conn, id)?;
        if operation.status() == Status::Finished {
            return Ok(operation);
        }
        let listening = conn.listen_for_finished()?;
        let waited = wait_on(pool, &mut conn, id, started, timeout, listening);
        if listening {
            // Before the connection goes back to the pool. Should it fail, the connection is
            // broken, and the pool's check on return discards it.
            let _ = conn.stop_listening();
        }
        waited
    }
}

fn wait_on<C: WorkerConnection>(
    pool: &Pool<ConnectionManager<C>>,
    conn: &mut PooledConnection<ConnectionManager<C>>,
    id: i64,
    started: Instant,
    timeout: Duration,
    listening: bool,
) -> Result<BatchOperation> {
    let socket = if listening {
        find_socket(pool, conn)
    } else {
        None
    };
    let bell = Bell::new();
    let mut pause = Duration::from_millis(1);
    loop {
        let operation = BatchOperation::find(conn, id)?;
        if operation.status() == Status::Finished {
            return Ok(operation);
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::WaitTimedOut {
                id,
                waited: started.elapsed(),
                status: operation.status(),
            });
        }
        if !listening {
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(LONGEST_POLL);
            continue;
        }
        // Until a notification names it, or it is time to read it anyway.
        let until = left.min(RECHECK);
        let since = Instant::now();
        loop {
            let slice = until.saturating_sub(since.elapsed());
            if slice.is_zero() {
                break;
            }
            match (&socket, &bell) {
                (Some(socket), Some(bell)) => {
                    if socket::wait(Some(socket), bell, slice) == socket::Woken::SocketGone {
                        std::thread::sleep(NOTIFICATION_POLL.min(slice));
                    }
                }
                _ => std::thread::sleep(NOTIFICATION_POLL.min(slice)),
            }
            if conn.finished_notifications()?.may_include(id) {
                break;
            }
        }
    }
}

/// The socket of `conn`, found with the help of a second connection, if the pool has one idle
/// now (a wait never blocks on the pool for it).
fn find_socket<C: WorkerConnection>(
    pool: &Pool<ConnectionManager<C>>,
    conn: &mut PooledConnection<ConnectionManager<C>>,
) -> Option<WaitSocket> {
    let mut notifier = pool.try_get()?;
    (**conn).wait_socket(&mut notifier).ok().flatten()
}
