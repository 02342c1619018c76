//! SQLite: `RETURNING` (SQLite 3.35+), one-statement limited deletes, and (for workers) claims
//! that take the database's write lock up front, having no row locks.

use diesel::connection::LoadConnection;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;

use super::conditions::{Matching, OrderedBy};
use super::rows::NewOperationRow;
use super::statements::{delete_matching, first_ids};
use super::{BatchConnection, Deleted, Dialect, StorageBackend};
use crate::schema::batchframework_batchoperation as operations;

/// SQLite migrations (`migrations/sqlite` in this crate).
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");

/// The connection stores through itself (a pooled one through the connection it wraps).
impl BatchConnection for diesel::SqliteConnection {
    type Storage = Self;

    fn storage(&mut self) -> &mut Self {
        self
    }
}

impl super::sealed::Sealed for diesel::SqliteConnection {}

impl StorageBackend for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations = MIGRATIONS;
    /// "no such table", "no such column", "table ... has no column named".
    const MISSING_SCHEMA: &'static [&'static str] =
        &["no such table", "no such column", "has no column named"];

    fn insert_operation<C>(conn: &mut C, row: &NewOperationRow<'_>) -> QueryResult<i64>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::insert_into(operations::table)
            .values(row)
            .returning(operations::id)
            .get_result(conn)
    }

    /// The row count ANALYZE left in `sqlite_stat1` (the first number of an index's `stat`).
    fn estimated_rows<C>(conn: &mut C) -> QueryResult<Option<i64>>
    where
        C: LoadConnection<Backend = Self>,
    {
        let has_stats: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1')",
        ))
        .get_result(conn)?;
        if !has_stats {
            return Ok(None);
        }
        diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
        >(
            "(SELECT MAX(CAST(stat AS INTEGER)) FROM sqlite_stat1 \
             WHERE tbl = 'batchframework_batchoperation')",
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
        super::batches::add_one_by_one(conn, Dialect::Sqlite, counts)
    }

    /// One statement: `id IN (subquery)`, which SQLite runs once, then seeks each rowid.
    fn delete_first<C>(
        conn: &mut C,
        matching: Matching<'_>,
        order: OrderedBy,
        limit: u32,
    ) -> QueryResult<Deleted>
    where
        C: LoadConnection<Backend = Self>,
    {
        // Boxed: Diesel checks a typed subquery of the table it filters as a self-join.
        let ids = first_ids(matching, order, limit).into_boxed::<Sqlite>();
        delete_matching(matching)
            .filter(operations::id.eq_any(ids))
            .returning(operations::id)
            .load(conn)
            .map(|ids: Vec<i64>| Deleted {
                count: ids.len(),
                highest_id: ids.into_iter().max(),
            })
    }
}

/// SQLite has no row locks: a claim, and a group commit, take the write lock up front
/// (`BEGIN IMMEDIATE`), so that two claimers never read the same due rows.
#[cfg(feature = "r2d2")]
impl super::worker::WorkerBackend for Sqlite {
    type Connection = diesel::SqliteConnection;
    const ROW_LOCKS: bool = false;
    const UPDATE_RETURNING: bool = true;
    /// SQLite has one write lock, and its busy handler is not fair: a thread that claimed many
    /// operations whose actions write keeps it busy back to back, and a writer of another
    /// process can wait past its busy timeout (our three-process test did, at 100 a claim).
    const LARGEST_CLAIM: Option<i64> = Some(10);
    /// Every claim takes that one lock: smaller claims when writes slow down under contention
    /// would only add to it (the three-process test starved a writer that way), so claims stay
    /// at the largest.
    const CLAIMS_SIZED_BY_RUN_TIME: bool = false;

    fn write_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>,
    {
        conn.immediate_transaction(body)
    }

    fn lock_pending(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<Vec<i64>> {
        let _ = conn;
        Ok(ids.to_vec())
    }

    fn mark_claimed(
        conn: &mut Self::Connection,
        claim: super::worker::statements::Claim<'_>,
        _ids: &[i64],
    ) -> QueryResult<Vec<crate::BatchOperation>> {
        claim
            .returning(crate::BatchOperation::as_returning())
            .get_results(conn)
    }

    fn finished_ids(
        conn: &mut Self::Connection,
        finish: diesel::query_builder::BoxedSqlQuery<'_, Self, diesel::query_builder::SqlQuery>,
        _worker: &str,
        _rows: &[super::worker::sql::FinishedRow<'_>],
    ) -> QueryResult<std::collections::HashSet<i64>> {
        let returned: Vec<super::worker::sql::ReturnedId> = finish.load(conn)?;
        Ok(returned.into_iter().map(|row| row.id).collect())
    }

    fn explain(
        conn: &mut Self::Connection,
        query: &dyn diesel::query_builder::QueryFragment<Self>,
    ) -> QueryResult<String> {
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let explain = super::worker::explain::Explain::new("EXPLAIN QUERY PLAN ", query);
        let rows: Vec<Plan> = explain.load(conn)?;
        Ok(rows.into_iter().map(|row| row.detail + "\n").collect())
    }
}
