//! Everything that differs between PostgreSQL, SQLite and MySQL/MariaDB, and the storage layer
//! that lets the rest of the crate be written once.
//!
//! * [`StorageBackend`] is what a backend is to this crate: its dialect, its migrations and the
//!   few statements it writes its own way. `pg.rs`, `sqlite.rs` and `mysql.rs` implement it for
//!   Diesel's `Pg`, `Sqlite` and `Mysql`, each behind its feature, with their worker
//!   counterparts (`worker::WorkerBackend`) behind `r2d2`.
//! * The statements that are the same everywhere are written once (`statements.rs`, with an
//!   [`OperationFilter`](crate::OperationFilter)'s conditions in `conditions.rs`) and run by
//!   `Storage` (`operations.rs`) and, for workers, `WorkerStorage` (`worker/`), each
//!   implemented once for every connection whose backend is a `StorageBackend`.
//! * [`BatchConnection`] is what users see: any such connection, pooled or not.

pub(crate) mod batches;
pub(crate) mod bulk_rows;
pub(crate) mod conditions;
#[cfg(feature = "postgres")]
pub(crate) mod copy;
mod dialect;
mod minutes;
mod operations;
mod retry;
pub(crate) mod rows;
#[cfg(feature = "r2d2")]
pub(crate) mod socket;
mod statements;
pub(crate) mod timestamp;
#[cfg(feature = "r2d2")]
pub(crate) mod worker;
pub(crate) mod workflows;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dialect::Dialect;
pub(crate) use dialect::{statement_budget, MYSQL_BULK_BINDS, SQLITE_MAX_BINDS};
pub(crate) use operations::Storage;
#[cfg(feature = "r2d2")]
pub(crate) use retry::retry_on_deadlock;
pub(crate) use retry::retry_outside_transaction;
pub(crate) use timestamp::{later_by, now};
pub use timestamp::{UtcDateTime, UtcTimestamp};
#[cfg(feature = "r2d2")]
pub use worker::WorkerConnection;
#[cfg(feature = "r2d2")]
pub(crate) use worker::WorkerStorage;

#[cfg(feature = "mysql")]
pub use mysql::MIGRATIONS as MYSQL;
#[cfg(feature = "postgres")]
pub use pg::MIGRATIONS as POSTGRES;
#[cfg(feature = "sqlite")]
pub use sqlite::MIGRATIONS as SQLITE;

use chrono::{DateTime, Utc};
use diesel::connection::LoadConnection;
use diesel::QueryResult;

use batches::BatchRow;
use conditions::{Matching, OrderedBy};
use rows::NewOperationRow;

/// A Diesel connection this crate can store batch operations through.
///
/// You never implement this: it is provided for `PgConnection` (feature `postgres`),
/// `SqliteConnection` (feature `sqlite`), `MysqlConnection` (feature `mysql`) and, with the
/// `r2d2` feature, for `PooledConnection<ConnectionManager<_>>` of each, so a pooled connection is
/// passed as it is (`&mut pooled`), in generic code too.
pub trait BatchConnection: diesel::Connection + sealed::Sealed {
    /// The connection the crate's statements run on: the connection itself, or the one a
    /// pooled connection wraps.
    #[doc(hidden)]
    type Storage: Storage;

    /// See [`Storage`](Self::Storage).
    #[doc(hidden)]
    fn storage(&mut self) -> &mut Self::Storage;
}

/// Keeps [`BatchConnection`] to the connection types this crate knows.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A pooled connection stores through the connection it wraps.
#[cfg(feature = "r2d2")]
impl<C> BatchConnection for diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>>
where
    C: BatchConnection + diesel::r2d2::R2D2Connection + Send + 'static,
{
    type Storage = C::Storage;

    fn storage(&mut self) -> &mut C::Storage {
        (**self).storage()
    }
}

#[cfg(feature = "r2d2")]
impl<C> sealed::Sealed for diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>> where
    C: BatchConnection + diesel::r2d2::R2D2Connection + Send + 'static
{
}

/// A database backend this crate stores operations in: what differs from one to the next.
///
/// Implemented for Diesel's `Pg`, `Sqlite` and `Mysql` (in `pg.rs`, `sqlite.rs`, `mysql.rs`).
/// Its methods are generic over the connection, so that a pooled connection runs them as the
/// connection it wraps does; inside an implementation the backend is concrete, and Diesel
/// checks each statement for it.
pub trait StorageBackend: diesel::backend::Backend + Sized {
    /// The SQL this backend speaks, for the few statements written as text.
    const DIALECT: Dialect;
    /// The backend's migrations, embedded.
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations;
    /// What the backend says when a table or column of ours is missing: its error messages
    /// contain one of these (and the table's name).
    const MISSING_SCHEMA: &'static [&'static str];

    /// Inserts one operation row and returns its id.
    fn insert_operation<C>(conn: &mut C, row: &NewOperationRow<'_>) -> QueryResult<i64>
    where
        C: LoadConnection<Backend = Self>;

    /// The most bytes one statement's packet may have, where the backend limits it.
    fn max_packet_bytes<C>(conn: &mut C) -> QueryResult<Option<usize>>
    where
        C: LoadConnection<Backend = Self>,
    {
        let _ = conn;
        Ok(None)
    }

    /// The database server's clock, or `None` where the database runs in this process (SQLite),
    /// whose clock is this machine's.
    fn database_now<C>(conn: &mut C) -> QueryResult<Option<DateTime<Utc>>>
    where
        C: LoadConnection<Backend = Self>,
    {
        let _ = conn;
        Ok(None)
    }

    /// The planner's estimate of the table's rows (cheap at any size), or `None` where the
    /// database has none yet (never analyzed).
    fn estimated_rows<C>(conn: &mut C) -> QueryResult<Option<i64>>
    where
        C: LoadConnection<Backend = Self>;

    /// Adds children finished to the counts of the batches `counts` names (parent, succeeded,
    /// failed; ascending parents), in the caller's transaction, and returns their rows as
    /// changed (a parent that is no batch has none). Each row stays locked until the
    /// transaction ends.
    fn add_to_batches<C>(conn: &mut C, counts: &[(i64, i64, i64)]) -> QueryResult<Vec<BatchRow>>
    where
        C: LoadConnection<Backend = Self>;

    /// Deletes the first `limit` operations `matching` selects, in `order`.
    fn delete_first<C>(
        conn: &mut C,
        matching: Matching<'_>,
        order: OrderedBy,
        limit: u32,
    ) -> QueryResult<Deleted>
    where
        C: LoadConnection<Backend = Self>;
}

/// What a limited delete did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// How many operations it deleted.
    pub(crate) count: usize,
    /// The highest id among those it deleted (on MySQL/MariaDB, among those it selected to
    /// delete): where the next batch of an id-ordered prune starts.
    pub(crate) highest_id: Option<i64>,
}

/// Diesel's errors, with a missing table or column of ours told apart
/// ([`Error::NotMigrated`](crate::Error::NotMigrated), which says to run the migrations).
impl From<diesel::result::Error> for crate::error::Error {
    fn from(error: diesel::result::Error) -> Self {
        if is_missing_schema(&error) {
            crate::error::Error::NotMigrated { source: error }
        } else {
            crate::error::Error::Database(error)
        }
    }
}

/// Recognises a missing table or column of ours (any `batchframework_` table: a database
/// migrated by an older release lacks the newer ones) as any enabled backend words it.
fn is_missing_schema(error: &diesel::result::Error) -> bool {
    let diesel::result::Error::DatabaseError(_, info) = error else {
        return false;
    };
    let message = info.message();
    let markers: &[&[&str]] = &[
        #[cfg(feature = "postgres")]
        <diesel::pg::Pg as StorageBackend>::MISSING_SCHEMA,
        #[cfg(feature = "sqlite")]
        <diesel::sqlite::Sqlite as StorageBackend>::MISSING_SCHEMA,
        #[cfg(feature = "mysql")]
        <diesel::mysql::Mysql as StorageBackend>::MISSING_SCHEMA,
    ];
    message.contains("batchframework_")
        && markers
            .iter()
            .flat_map(|markers| markers.iter())
            .any(|marker| message.contains(marker))
}
