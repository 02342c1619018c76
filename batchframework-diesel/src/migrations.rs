//! The embedded migrations that create this crate's tables, one set per backend.
//!
//! [`run_migrations`] applies the set for the connection's backend. The sets are public so an
//! application that runs its own `embed_migrations!` can apply ours beside them with
//! `MigrationHarness::run_pending_migrations`; both share Diesel's `__diesel_schema_migrations`
//! table. Our migration directories are named `<date>-<sequence>_batchframework_<what>`, so our
//! versions look like any Diesel timestamped version; only a migration of the application's with
//! the very same version could clash.

use crate::backend::{BatchConnection, Storage};
use crate::error::{Error, Result};

// The sets are embedded in the backend layer, which applies them; they are public from here.
#[cfg(feature = "mysql")]
pub use crate::backend::MYSQL;
#[cfg(feature = "postgres")]
pub use crate::backend::POSTGRES;
#[cfg(feature = "sqlite")]
pub use crate::backend::SQLITE;

/// Creates (or brings up to date) the batchframework tables on this connection's database.
///
/// Idempotent: migrations already applied are skipped, so it is safe to call at every start-up.
/// Returns the versions it applied, empty when there was nothing to do.
///
/// ```
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// let applied = batchframework_diesel::run_migrations(&mut conn)?;
/// assert!(!applied.is_empty());
/// assert!(batchframework_diesel::run_migrations(&mut conn)?.is_empty());
/// # Ok(())
/// # }
/// ```
pub fn run_migrations<C: BatchConnection>(conn: &mut C) -> Result<Vec<String>> {
    conn.storage()
        .run_embedded_migrations()
        .map_err(Error::Migration)
}

/// The versions of the batchframework migrations this connection's database has not applied
/// yet, oldest first: empty when it is up to date. For a health check, or a deployment step
/// that refuses to start on an old schema.
///
/// ```
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// assert!(!batchframework_diesel::pending_migrations(&mut conn)?.is_empty());
/// batchframework_diesel::run_migrations(&mut conn)?;
/// assert!(batchframework_diesel::pending_migrations(&mut conn)?.is_empty());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Migration`] when the migrations table cannot be read.
pub fn pending_migrations<C: BatchConnection>(conn: &mut C) -> Result<Vec<String>> {
    conn.storage()
        .pending_embedded_migrations()
        .map_err(Error::Migration)
}
