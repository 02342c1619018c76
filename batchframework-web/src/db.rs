//! Database calls from async handlers: on tokio's blocking pool, with a pooled connection.

use batchframework_diesel::worker::WorkerConnection;
use diesel::r2d2::{ConnectionManager, PooledConnection};

use crate::error::WebError;
use crate::state::AppState;

/// A pooled connection, as the calls get it.
pub(crate) type Conn<C> = PooledConnection<ConnectionManager<C>>;

/// Runs `call` with a connection from the pool on tokio's blocking pool, so the async workers
/// never wait on the database.
pub(crate) async fn with_conn<C, T, F>(state: &AppState<C>, call: F) -> Result<T, WebError>
where
    C: WorkerConnection,
    T: Send + 'static,
    F: FnOnce(&mut Conn<C>) -> Result<T, WebError> + Send + 'static,
{
    let pool = state.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(WebError::Pool)?;
        call(&mut conn)
    })
    .await
    .map_err(|_| WebError::Internal("the database call stopped before answering".to_owned()))?
}
