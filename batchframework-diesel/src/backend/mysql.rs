//! MySQL/MariaDB: no `RETURNING` (`LAST_INSERT_ID()` and reads in the same transaction instead),
//! statements limited by `max_allowed_packet`, limited deletes in two steps, and (for workers)
//! claims in READ COMMITTED.

use diesel::connection::LoadConnection;
use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned};

use super::conditions::{Matching, OrderedBy};
use super::rows::NewOperationRow;
use super::statements::{delete_matching, first_ids};
use super::{BatchConnection, Deleted, Dialect, StorageBackend, UtcTimestamp};
use crate::schema::batchframework_batchoperation as operations;
use chrono::{DateTime, Utc};

/// MySQL/MariaDB migrations (`migrations/mysql` in this crate).
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/mysql");

/// The most ids one DELETE of a limited delete names, which bind each: well under the 65,535
/// placeholders, and one statement for the default prune batch.
const DELETE_CHUNK: usize = 10_000;

/// The connection stores through itself (a pooled one through the connection it wraps).
impl BatchConnection for diesel::MysqlConnection {
    type Storage = Self;

    fn storage(&mut self) -> &mut Self {
        self
    }
}

impl super::sealed::Sealed for diesel::MysqlConnection {}

impl StorageBackend for Mysql {
    const DIALECT: Dialect = Dialect::Mysql;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations = MIGRATIONS;
    /// "Table ... doesn't exist", "Unknown column".
    const MISSING_SCHEMA: &'static [&'static str] = &["doesn't exist", "Unknown column"];

    /// The INSERT, then `SELECT LAST_INSERT_ID()`: per connection, so safe under concurrency.
    fn insert_operation<C>(conn: &mut C, row: &NewOperationRow<'_>) -> QueryResult<i64>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::insert_into(operations::table)
            .values(row)
            .execute(conn)?;
        let id: u64 = diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("LAST_INSERT_ID()"))
            .get_result(conn)?;
        i64::try_from(id).map_err(|e| diesel::result::Error::DeserializationError(e.into()))
    }

    /// `@@max_allowed_packet`, read from the server.
    fn max_packet_bytes<C>(conn: &mut C) -> QueryResult<Option<usize>>
    where
        C: LoadConnection<Backend = Self>,
    {
        let bytes: u64 =
            diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("@@max_allowed_packet"))
                .get_result(conn)?;
        Ok(Some(usize::try_from(bytes).unwrap_or(usize::MAX)))
    }

    /// `UTC_TIMESTAMP(6)`: the server's clock, in UTC whatever the session's time zone.
    fn database_now<C>(conn: &mut C) -> QueryResult<Option<DateTime<Utc>>>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::select(diesel::dsl::sql::<UtcTimestamp>("UTC_TIMESTAMP(6)"))
            .get_result(conn)
            .map(Some)
    }

    /// InnoDB's estimate in `information_schema.TABLES`, kept by its statistics.
    fn estimated_rows<C>(conn: &mut C) -> QueryResult<Option<i64>>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Nullable<BigInt>>(
            "(SELECT CAST(TABLE_ROWS AS SIGNED) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'batchframework_batchoperation')",
        ))
        .get_result(conn)
    }

    fn add_to_batches<C>(
        conn: &mut C,
        counts: &[(i64, i64, i64)],
    ) -> QueryResult<Vec<super::batches::BatchRow>>
    where
        C: LoadConnection<Backend = Self>,
    {
        super::batches::add_one_by_one(conn, Dialect::Mysql, counts)
    }

    /// The ids are read first, then deleted by id. MySQL and MariaDB cannot LIMIT a subquery
    /// under IN; a derived table around it makes MariaDB scan the whole table per statement;
    /// and MariaDB plans `DELETE ... ORDER BY id LIMIT n` through a status index and sorts
    /// every matching row per statement. The SELECT walks the primary key and takes no locks;
    /// each DELETE seeks its ids in the primary key and locks only the rows it deletes.
    fn delete_first<C>(
        conn: &mut C,
        matching: Matching<'_>,
        order: OrderedBy,
        limit: u32,
    ) -> QueryResult<Deleted>
    where
        C: LoadConnection<Backend = Self>,
    {
        let ids: Vec<i64> = first_ids(matching, order, limit).load(conn)?;
        let mut count = 0;
        for chunk in ids.chunks(DELETE_CHUNK) {
            count += delete_matching(matching)
                .filter(operations::id.eq_any(chunk))
                .execute(conn)?;
        }
        Ok(Deleted {
            count,
            highest_id: ids.into_iter().max(),
        })
    }
}

#[cfg(feature = "r2d2")]
impl super::worker::WorkerBackend for Mysql {
    type Connection = diesel::MysqlConnection;
    const ROW_LOCKS: bool = true;
    const UPDATE_RETURNING: bool = false;

    fn write_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>,
    {
        conn.transaction(body)
    }

    /// MySQL's default REPEATABLE READ makes the claim's locking read take gap locks on the
    /// claim index, and an application inserting new operations meanwhile deadlocks with it:
    /// the claim runs in READ COMMITTED, which locks only the rows it takes. (`SET TRANSACTION`
    /// applies to the next transaction only.)
    fn claim_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>,
    {
        use diesel::connection::SimpleConnection;
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
        conn.transaction(body)
    }

    /// No `UPDATE ... RETURNING`: the claimed rows are read back by id, in the claim's
    /// transaction, which holds their locks.
    fn lock_pending(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<Vec<i64>> {
        super::worker::statements::pending_among(ids)
            .for_update()
            .skip_locked()
            .load(conn)
    }

    fn mark_claimed(
        conn: &mut Self::Connection,
        claim: super::worker::statements::Claim<'_>,
        ids: &[i64],
    ) -> QueryResult<Vec<crate::BatchOperation>> {
        claim.execute(conn)?;
        operations::table
            .filter(operations::id.eq_any(ids))
            .select(crate::BatchOperation::as_select())
            .load(conn)
    }

    /// No `UPDATE ... RETURNING`: read back in the same transaction. A row is finished, held by
    /// `worker` and at its attempt only if this statement wrote it.
    fn finished_ids(
        conn: &mut Self::Connection,
        finish: diesel::query_builder::BoxedSqlQuery<'_, Self, diesel::query_builder::SqlQuery>,
        worker: &str,
        rows: &[super::worker::sql::FinishedRow<'_>],
    ) -> QueryResult<std::collections::HashSet<i64>> {
        finish.execute(conn)?;
        let attempts: std::collections::HashMap<i64, i32> =
            rows.iter().map(|row| (row.id, row.attempt)).collect();
        let written: Vec<(i64, i32)> = operations::table
            .filter(operations::id.eq_any(attempts.keys()))
            .filter(operations::status.eq(crate::Status::Finished))
            .filter(operations::locked_by.eq(worker))
            .select((operations::id, operations::attempts))
            .load(conn)?;
        Ok(written
            .into_iter()
            .filter(|(id, attempt)| attempts.get(id) == Some(attempt))
            .map(|(id, _)| id)
            .collect())
    }

    fn try_lock_pruning(conn: &mut Self::Connection) -> QueryResult<bool> {
        session_lock(conn, "GET_LOCK", ", 0")
    }

    fn unlock_pruning(conn: &mut Self::Connection) -> QueryResult<()> {
        session_lock(conn, "RELEASE_LOCK", "").map(|_| ())
    }

    fn explain(
        conn: &mut Self::Connection,
        query: &dyn diesel::query_builder::QueryFragment<Self>,
    ) -> QueryResult<String> {
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "EXPLAIN")]
            plan: String,
        }
        let explain = super::worker::explain::Explain::new("EXPLAIN FORMAT=JSON ", query);
        let rows: Vec<Plan> = explain.load(conn)?;
        Ok(rows.into_iter().map(|row| row.plan).collect())
    }
}

/// Calls named lock function `function` on the pruning lock: one per database (named locks are
/// server-wide), its name cut to the 64 characters a lock name may have.
#[cfg(feature = "r2d2")]
fn session_lock(
    conn: &mut diesel::MysqlConnection,
    function: &str,
    arguments: &str,
) -> QueryResult<bool> {
    let answer: super::worker::sql::LockAnswer = diesel::sql_query(format!(
        "SELECT CAST({function}(LEFT(CONCAT(DATABASE(), '.batchframework_prune'), 64){arguments}) \
         AS SIGNED) AS locked"
    ))
    .get_result(conn)?;
    Ok(answer.locked == Some(1))
}
