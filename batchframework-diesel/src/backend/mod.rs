//! Everything that differs between PostgreSQL, SQLite and MySQL/MariaDB, and the one trait that
//! lets the rest of the crate be written once.
//!
//! [`BatchConnection`] is implemented for `PgConnection`, `SqliteConnection`, `MysqlConnection`
//! (each behind its feature) and for r2d2 pooled connections of each (feature `r2d2`). It is
//! sealed: its methods are the crate's storage layer, not an extension point.

mod dialect;
pub(crate) mod storage;
pub(crate) mod timestamp;

pub use dialect::Dialect;
pub(crate) use dialect::{statement_budget, MYSQL_MAX_BINDS, SQLITE_MAX_BINDS};
pub(crate) use timestamp::{later_by, now};
pub use timestamp::{UtcDateTime, UtcTimestamp};

use crate::operation::BatchOperation;

use crate::filter::{Keyset, OperationFilter};
use crate::status::Status;
use storage::{NewOperationRow, StatusChange};

/// PostgreSQL migrations (`migrations/postgres` in this crate).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub const POSTGRES: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");

/// SQLite migrations (`migrations/sqlite` in this crate).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub const SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");

/// MySQL/MariaDB migrations (`migrations/mysql` in this crate).
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub const MYSQL: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/mysql");

/// A Diesel connection this crate can store batch operations through.
///
/// You never implement this: it is provided for `PgConnection` (feature `postgres`),
/// `SqliteConnection` (feature `sqlite`), `MysqlConnection` (feature `mysql`) and, with the
/// `r2d2` feature, for `PooledConnection<ConnectionManager<_>>` of each, so a pooled connection is
/// passed as it is (`&mut pooled`).
pub trait BatchConnection: diesel::Connection + Storage {}

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

/// Recognises a missing table or column of ours as each backend words it, so that the error
/// can tell the caller to run the migrations.
fn is_missing_schema(error: &diesel::result::Error) -> bool {
    let diesel::result::Error::DatabaseError(_, info) = error else {
        return false;
    };
    let message = info.message();
    message.contains("batchframework_batchoperation")
        && (message.contains("does not exist") // PostgreSQL: relation or column
            || message.contains("no such table") // SQLite
            || message.contains("no such column") // SQLite
            || message.contains("doesn't exist") // MySQL / MariaDB: table
            || message.contains("Unknown column")) // MySQL / MariaDB: column
}

impl<C: diesel::Connection + Storage> BatchConnection for C {}

/// The storage operations behind [`BatchConnection`]; one implementation per connection type.
///
/// Public only because [`BatchConnection`] names it, and hidden: it is not part of the API. It
/// cannot be implemented outside the crate (its parameter types are the crate's own), but its
/// methods can be called through a `BatchConnection` bound; don't: they skip the checks and
/// in-memory updates of [`BatchOperation`]'s methods, and change without notice.
#[doc(hidden)]
pub trait Storage {
    /// The SQL dialect of this connection's backend.
    const DIALECT: Dialect;
    /// The most bytes one statement's packet may have (MySQL's `max_allowed_packet`), where the
    /// backend limits it.
    fn max_packet_bytes(&mut self) -> diesel::QueryResult<Option<usize>>;
    /// Applies this backend's embedded migrations; returns the versions applied.
    fn run_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
    /// Inserts one operation row and returns its id.
    fn insert_operation(&mut self, row: &NewOperationRow<'_>) -> diesel::QueryResult<i64>;
    /// `UPDATE ... SET change WHERE id = ? AND status = from`; returns the rows changed (0 or 1).
    fn change_status(
        &mut self,
        id: i64,
        from: Status,
        change: &StatusChange<'_>,
    ) -> diesel::QueryResult<usize>;
    /// Sets a running operation's progress; returns the rows changed (0 or 1).
    fn update_progress(
        &mut self,
        id: i64,
        done: i64,
        total: Option<i64>,
    ) -> diesel::QueryResult<usize>;
    /// Flags a running operation for cancellation; returns the rows changed (0 or 1).
    fn request_cancel(&mut self, id: i64) -> diesel::QueryResult<usize>;
    /// Claims up to `limit` operations for `worker` on `queues` whose type is one of
    /// `operation_types` (the worker's registry): running ones whose holder's
    /// heartbeat is older than `stale_before` (a lost worker) first, then pending ones due by
    /// `now`, by priority then age. Each is set `running`, locked by `worker`, heartbeat `now`,
    /// `attempts + 1`, and returned by priority then id. Concurrent claimers never get the same
    /// operation.
    fn claim_operations(
        &mut self,
        worker: &str,
        queues: &[String],
        operation_types: &[String],
        now: chrono::DateTime<chrono::Utc>,
        stale_before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> diesel::QueryResult<Vec<BatchOperation>>;
    /// Whether [`claim_operations`](Self::claim_operations) would find work, read without
    /// locking. A claim can come back empty while work is due: on MySQL/MariaDB, SKIP LOCKED
    /// also skips rows another claim's scan holds for an instant, and two concurrent claims can
    /// skip the same due row that way.
    fn has_claimable(
        &mut self,
        queues: &[String],
        operation_types: &[String],
        now: chrono::DateTime<chrono::Utc>,
        stale_before: chrono::DateTime<chrono::Utc>,
    ) -> diesel::QueryResult<bool>;
    /// `change` on an operation only if it is still `running`, held by `worker` and at the
    /// `attempt` it was claimed at (fencing).
    fn change_claimed(
        &mut self,
        id: i64,
        attempt: i32,
        worker: &str,
        change: &storage::ClaimedChange<'_>,
    ) -> diesel::QueryResult<usize>;
    /// Finishes held operations, each only if still `running`, held by `worker` and at the
    /// attempt it was claimed at (fencing), in one transaction and one statement per chunk of
    /// at most [`FINISH_CHUNK`](storage::FINISH_CHUNK) rows and about `max_statement_bytes`;
    /// whether each was written.
    fn finish_claimed(
        &mut self,
        worker: &str,
        rows: &[storage::FinishedRow<'_>],
        max_statement_bytes: Option<usize>,
    ) -> diesel::QueryResult<Vec<bool>>;
    /// Subscribes this connection to new-work notifications; `false` where the backend has none
    /// (workers then only poll).
    fn listen_for_work(&mut self) -> diesel::QueryResult<bool>;
    /// Ends every subscription of this connection, before it goes back to a pool.
    fn stop_listening(&mut self) -> diesel::QueryResult<()>;
    /// The queues named by the new-work notifications received since the last call. Never
    /// blocks: it reads what has already arrived on the connection.
    fn work_notifications(&mut self) -> diesel::QueryResult<Vec<String>>;
    /// Refreshes the heartbeat of the operations `worker` holds among `ids`.
    fn heartbeat(
        &mut self,
        worker: &str,
        ids: &[i64],
        now: chrono::DateTime<chrono::Utc>,
    ) -> diesel::QueryResult<usize>;
    /// Whether the operation was asked to cancel (`None`: it no longer exists); reads one
    /// column, for actions that check it often.
    fn cancel_requested(&mut self, id: i64) -> diesel::QueryResult<Option<bool>>;
    /// The operation with this id, if it exists.
    fn find_operation(&mut self, id: i64) -> diesel::QueryResult<Option<BatchOperation>>;
    /// The operations matching the filter, in its order, after `keyset`, at most its limit.
    fn load_operations(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> diesel::QueryResult<Vec<BatchOperation>>;
    /// The creation time of the operation with this id, if it exists (a keyset's key).
    fn operation_created(
        &mut self,
        id: i64,
    ) -> diesel::QueryResult<Option<chrono::DateTime<chrono::Utc>>>;
    /// How many operations match the filter's conditions (its order, limit and keyset ignored).
    fn count_operations(&mut self, filter: &OperationFilter) -> diesel::QueryResult<i64>;
    /// Deletes the *unprocessed* operations matching the filter, after `keyset`, and with a
    /// limit at most that many, the first in the filter's order; returns how many. One
    /// statement, except on MySQL/MariaDB with a limit: a SELECT of the ids, then a DELETE per
    /// `storage::MYSQL_DELETE_CHUNK` of them.
    fn delete_pending(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> diesel::QueryResult<usize>;
    /// One prune batch: deletes the *finished* operations matching the filter, at most its
    /// limit, the first in its order, as [`delete_pending`](Self::delete_pending) does; returns
    /// how many.
    fn delete_finished(&mut self, filter: &OperationFilter) -> diesel::QueryResult<usize>;
}

#[cfg(feature = "postgres")]
storage::impl_storage!(
    diesel::PgConnection,
    Postgres,
    returning,
    skip_locked,
    notify,
    POSTGRES
);

#[cfg(feature = "sqlite")]
storage::impl_storage!(
    diesel::SqliteConnection,
    Sqlite,
    returning,
    immediate,
    none,
    SQLITE
);

#[cfg(feature = "mysql")]
storage::impl_storage!(
    diesel::MysqlConnection,
    Mysql,
    last_insert_id,
    skip_locked,
    none,
    MYSQL
);

/// A pooled connection stores through the connection it wraps.
#[cfg(feature = "r2d2")]
impl<C> Storage for diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>>
where
    C: Storage + diesel::r2d2::R2D2Connection + Send + 'static,
{
    const DIALECT: Dialect = C::DIALECT;

    fn max_packet_bytes(&mut self) -> diesel::QueryResult<Option<usize>> {
        (**self).max_packet_bytes()
    }

    fn run_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        (**self).run_embedded_migrations()
    }

    fn insert_operation(&mut self, row: &NewOperationRow<'_>) -> diesel::QueryResult<i64> {
        (**self).insert_operation(row)
    }

    fn change_status(
        &mut self,
        id: i64,
        from: Status,
        change: &StatusChange<'_>,
    ) -> diesel::QueryResult<usize> {
        (**self).change_status(id, from, change)
    }

    fn update_progress(
        &mut self,
        id: i64,
        done: i64,
        total: Option<i64>,
    ) -> diesel::QueryResult<usize> {
        (**self).update_progress(id, done, total)
    }

    fn request_cancel(&mut self, id: i64) -> diesel::QueryResult<usize> {
        (**self).request_cancel(id)
    }

    fn find_operation(&mut self, id: i64) -> diesel::QueryResult<Option<BatchOperation>> {
        (**self).find_operation(id)
    }

    fn cancel_requested(&mut self, id: i64) -> diesel::QueryResult<Option<bool>> {
        (**self).cancel_requested(id)
    }

    fn claim_operations(
        &mut self,
        worker: &str,
        queues: &[String],
        operation_types: &[String],
        now: chrono::DateTime<chrono::Utc>,
        stale_before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> diesel::QueryResult<Vec<BatchOperation>> {
        (**self).claim_operations(worker, queues, operation_types, now, stale_before, limit)
    }

    fn has_claimable(
        &mut self,
        queues: &[String],
        operation_types: &[String],
        now: chrono::DateTime<chrono::Utc>,
        stale_before: chrono::DateTime<chrono::Utc>,
    ) -> diesel::QueryResult<bool> {
        (**self).has_claimable(queues, operation_types, now, stale_before)
    }

    fn change_claimed(
        &mut self,
        id: i64,
        attempt: i32,
        worker: &str,
        change: &storage::ClaimedChange<'_>,
    ) -> diesel::QueryResult<usize> {
        (**self).change_claimed(id, attempt, worker, change)
    }

    fn finish_claimed(
        &mut self,
        worker: &str,
        rows: &[storage::FinishedRow<'_>],
        max_statement_bytes: Option<usize>,
    ) -> diesel::QueryResult<Vec<bool>> {
        (**self).finish_claimed(worker, rows, max_statement_bytes)
    }

    fn listen_for_work(&mut self) -> diesel::QueryResult<bool> {
        (**self).listen_for_work()
    }

    fn stop_listening(&mut self) -> diesel::QueryResult<()> {
        (**self).stop_listening()
    }

    fn work_notifications(&mut self) -> diesel::QueryResult<Vec<String>> {
        (**self).work_notifications()
    }

    fn heartbeat(
        &mut self,
        worker: &str,
        ids: &[i64],
        now: chrono::DateTime<chrono::Utc>,
    ) -> diesel::QueryResult<usize> {
        (**self).heartbeat(worker, ids, now)
    }

    fn load_operations(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> diesel::QueryResult<Vec<BatchOperation>> {
        (**self).load_operations(filter, keyset)
    }

    fn operation_created(
        &mut self,
        id: i64,
    ) -> diesel::QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
        (**self).operation_created(id)
    }

    fn count_operations(&mut self, filter: &OperationFilter) -> diesel::QueryResult<i64> {
        (**self).count_operations(filter)
    }

    fn delete_pending(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> diesel::QueryResult<usize> {
        (**self).delete_pending(filter, keyset)
    }

    fn delete_finished(&mut self, filter: &OperationFilter) -> diesel::QueryResult<usize> {
        (**self).delete_finished(filter)
    }
}
