//! What every request handler shares: the pool, the options, and the key the CSRF tokens are
//! checked with.

use std::sync::Arc;

use diesel::r2d2::{ConnectionManager, Pool};

use crate::options::Options;

/// The router's state: cheap to clone (an `Arc` and a pool handle).
pub(crate) struct AppState<C: diesel::r2d2::R2D2Connection + 'static> {
    pub(crate) pool: Pool<ConnectionManager<C>>,
    pub(crate) options: Arc<Options>,
}

impl<C: diesel::r2d2::R2D2Connection + 'static> Clone for AppState<C> {
    fn clone(&self) -> Self {
        AppState {
            pool: self.pool.clone(),
            options: self.options.clone(),
        }
    }
}

impl<C: diesel::r2d2::R2D2Connection + 'static> AppState<C> {
    pub(crate) fn new(pool: Pool<ConnectionManager<C>>, options: Options) -> Self {
        AppState {
            pool,
            options: Arc::new(options),
        }
    }
}
