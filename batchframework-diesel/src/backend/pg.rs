//! PostgreSQL: `RETURNING`, one-statement limited deletes, and (for workers) row locks that
//! skip locked rows and `LISTEN` for new work.

use diesel::connection::LoadConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::conditions::{Matching, OrderedBy};
use super::rows::NewOperationRow;
use super::statements::{delete_matching, first_ids};
use super::{BatchConnection, Deleted, Dialect, StorageBackend, UtcTimestamp};
use crate::schema::batchframework_batchoperation as operations;
use chrono::{DateTime, Utc};

/// PostgreSQL migrations (`migrations/postgres` in this crate).
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");

/// The connection stores through itself (a pooled one through the connection it wraps).
impl BatchConnection for diesel::PgConnection {
    type Storage = Self;

    fn storage(&mut self) -> &mut Self {
        self
    }
}

impl super::sealed::Sealed for diesel::PgConnection {}

impl StorageBackend for Pg {
    const DIALECT: Dialect = Dialect::Postgres;
    const MIGRATIONS: diesel_migrations::EmbeddedMigrations = MIGRATIONS;
    /// "relation ... does not exist", "column ... does not exist".
    const MISSING_SCHEMA: &'static [&'static str] = &["does not exist"];

    fn insert_operation<C>(conn: &mut C, row: &NewOperationRow<'_>) -> QueryResult<i64>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::insert_into(operations::table)
            .values(row)
            .returning(operations::id)
            .get_result(conn)
    }

    /// `clock_timestamp()`: the server's clock now (`CURRENT_TIMESTAMP` would be the start of
    /// the transaction).
    fn database_now<C>(conn: &mut C) -> QueryResult<Option<DateTime<Utc>>>
    where
        C: LoadConnection<Backend = Self>,
    {
        diesel::select(diesel::dsl::sql::<UtcTimestamp>("clock_timestamp()"))
            .get_result(conn)
            .map(Some)
    }

    /// `pg_class.reltuples`, kept by ANALYZE and autovacuum; -1 before the first.
    fn estimated_rows<C>(conn: &mut C) -> QueryResult<Option<i64>>
    where
        C: LoadConnection<Backend = Self>,
    {
        let rows: Option<i64> =
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Nullable<BigInt>>(
                "(SELECT reltuples::BIGINT FROM pg_class \
             WHERE oid = to_regclass('batchframework_batchoperation'))",
            ))
            .get_result(conn)?;
        Ok(rows.filter(|rows| *rows >= 0))
    }

    /// One statement for every batch of the group, the counts as arrays.
    fn add_to_batches<C>(
        conn: &mut C,
        counts: &[(i64, i64, i64)],
    ) -> QueryResult<Vec<super::batches::BatchRow>>
    where
        C: LoadConnection<Backend = Self>,
    {
        use diesel::sql_types::Array;
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let column =
            |pick: fn(&(i64, i64, i64)) -> i64| counts.iter().map(pick).collect::<Vec<_>>();
        diesel::sql_query(super::batches::PG_ADD_TO_BATCHES_SQL)
            .bind::<Array<BigInt>, _>(column(|c| c.0))
            .bind::<Array<BigInt>, _>(column(|c| c.1))
            .bind::<Array<BigInt>, _>(column(|c| c.2))
            .load(conn)
    }

    /// One statement: `id = ANY(ARRAY(subquery))`. The array is computed once and each id
    /// sought in the primary key; as `IN (subquery)` the planner hash-joins a scan of the whole
    /// table once a batch has a few thousand rows, so each batch would cost the table.
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
        let ids = first_ids(matching, order, limit).into_boxed::<Pg>();
        let ids = diesel::dsl::array::<BigInt, _>(ids);
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

/// The PostgreSQL channel on which new due work is announced, with the queue's name as payload
/// (by the triggers of the migration `..._batchframework_notify_work`).
#[cfg(feature = "r2d2")]
const WORK_CHANNEL: &str = "batchframework_work";

/// The channel the workers' group commits notify with the ids of the operations they finished,
/// comma-separated, for [`BatchOperation::wait`](crate::BatchOperation::wait) (the finishing
/// statement, `PG_FINISH_SQL`, names it too).
#[cfg(feature = "r2d2")]
const FINISHED_CHANNEL: &str = "batchframework_finished";

/// The longest payload of one finish notification (PostgreSQL's limit is 8,000 bytes).
#[cfg(feature = "r2d2")]
const FINISHED_PAYLOAD: usize = 7_000;

#[cfg(feature = "r2d2")]
impl super::worker::WorkerBackend for Pg {
    type Connection = diesel::PgConnection;
    const ROW_LOCKS: bool = true;
    const UPDATE_RETURNING: bool = true;

    fn write_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>,
    {
        conn.transaction(body)
    }

    fn lock_pending(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<Vec<i64>> {
        super::worker::statements::pending_among(ids)
            .for_update()
            .skip_locked()
            .load(conn)
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

    /// One UPDATE joined to the rows' values passed as arrays (`unnest`): its text is the same
    /// for every chunk, and each row is found by one probe of the primary key. The CASE
    /// expressions of the portable statement compare each row's id with every id of the chunk,
    /// which costs more than the update itself once the keeper commits a few hundred rows.
    fn own_finish_query<'a>(
        worker: &'a str,
        rows: &'a [super::worker::sql::FinishedRow<'a>],
    ) -> Option<diesel::query_builder::BoxedSqlQuery<'a, Self, diesel::query_builder::SqlQuery>>
    {
        use diesel::sql_types::{Array, Integer, Text};
        Some(
            diesel::sql_query(super::worker::sql::PG_FINISH_SQL)
                .into_boxed::<Pg>()
                .bind::<Text, _>(crate::Status::Finished)
                .bind::<Array<BigInt>, _>(rows.iter().map(|row| row.id).collect::<Vec<_>>())
                .bind::<Array<Integer>, _>(rows.iter().map(|row| row.attempt).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(rows.iter().map(|row| row.result).collect::<Vec<_>>())
                .bind::<Array<UtcTimestamp>, _>(
                    rows.iter().map(|row| row.finished_at.0).collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(
                    rows.iter()
                        .map(|row| row.output_data_json)
                        .collect::<Vec<_>>(),
                )
                .bind::<Text, _>(worker),
        )
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

    /// The migration's trigger notifies [`WORK_CHANNEL`] with the queue's name when due work is
    /// inserted or released; the worker's keeper connection listens.
    fn listen_for_work(conn: &mut Self::Connection) -> QueryResult<bool> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!("LISTEN {WORK_CHANNEL}"))?;
        Ok(true)
    }

    /// One statement, whatever the number of ids: each payload as an element of an array.
    fn notify_finished(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<()> {
        use diesel::sql_types::{Array, Text};
        if ids.is_empty() {
            return Ok(());
        }
        let mut payloads = vec![String::new()];
        for id in ids {
            let id = id.to_string();
            let last = payloads
                .last_mut()
                .filter(|p| p.len() + id.len() < FINISHED_PAYLOAD);
            match last {
                Some(payload) => {
                    if !payload.is_empty() {
                        payload.push(',');
                    }
                    payload.push_str(&id);
                }
                None => payloads.push(id),
            }
        }
        diesel::sql_query(format!(
            "SELECT pg_notify('{FINISHED_CHANNEL}', payload)::text FROM unnest($1::text[]) AS payload"
        ))
        .bind::<Array<Text>, _>(payloads)
        .execute(conn)
        .map(|_| ())
    }

    fn listen_for_finished(conn: &mut Self::Connection) -> QueryResult<bool> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!("LISTEN {FINISHED_CHANNEL}"))?;
        Ok(true)
    }

    fn finished_notifications(conn: &mut Self::Connection) -> QueryResult<super::worker::Finishes> {
        let mut finishes = super::worker::Finishes::default();
        for notification in conn.notifications_iter() {
            let notification = notification?;
            if notification.channel == FINISHED_CHANNEL {
                if notification.payload.is_empty() {
                    finishes.unnamed = true;
                }
                let ids = notification.payload.split(',');
                finishes
                    .ids
                    .extend(ids.filter_map(|id| id.parse::<i64>().ok()));
            }
        }
        Ok(finishes)
    }

    fn stop_listening(conn: &mut Self::Connection) -> QueryResult<()> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute("UNLISTEN *")
    }

    fn try_lock_pruning(conn: &mut Self::Connection) -> QueryResult<bool> {
        session_lock(conn, "pg_try_advisory_lock")
    }

    fn unlock_pruning(conn: &mut Self::Connection) -> QueryResult<()> {
        session_lock(conn, "pg_advisory_unlock").map(|_| ())
    }

    fn explain(
        conn: &mut Self::Connection,
        query: &dyn diesel::query_builder::QueryFragment<Self>,
    ) -> QueryResult<String> {
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
            plan: String,
        }
        // ANALYZE runs the statement (for the rows each node removed by filter), in a
        // transaction rolled back, so that a claim's read locks nothing for long.
        let mut plan = String::new();
        let ran = conn.transaction(|conn| {
            let explain =
                super::worker::explain::Explain::new("EXPLAIN (ANALYZE, FORMAT JSON) ", query);
            let rows: Vec<Plan> = explain.load(conn)?;
            plan = rows.into_iter().map(|row| row.plan).collect();
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        });
        match ran {
            Ok(()) | Err(diesel::result::Error::RollbackTransaction) => Ok(plan),
            Err(error) => Err(error),
        }
    }

    #[cfg(unix)]
    fn wait_socket(
        conn: &mut Self::Connection,
        notifier: &mut Self::Connection,
    ) -> QueryResult<Option<super::socket::WaitSocket>> {
        super::socket::WaitSocket::find(conn, notifier)
    }

    fn work_notifications(conn: &mut Self::Connection) -> QueryResult<Vec<String>> {
        let mut queues = Vec::new();
        for notification in conn.notifications_iter() {
            let notification = notification?;
            if notification.channel == WORK_CHANNEL {
                queues.push(notification.payload);
            }
        }
        Ok(queues)
    }
}

/// Calls advisory lock function `function` on the pruning lock's key: one per schema (tables
/// of the same name in two schemas are two installations). The two-integer form keeps it apart
/// from an application's single-key advisory locks.
#[cfg(feature = "r2d2")]
fn session_lock(conn: &mut diesel::PgConnection, function: &str) -> QueryResult<bool> {
    let answer: super::worker::sql::LockAnswer = diesel::sql_query(format!(
        "SELECT CASE WHEN {function}(hashtext('batchframework_prune'), hashtext(current_schema())) \
         THEN 1 ELSE 0 END::BIGINT AS locked"
    ))
    .get_result(conn)?;
    Ok(answer.locked == Some(1))
}
