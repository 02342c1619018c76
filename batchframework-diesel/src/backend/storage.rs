//! The SQL this crate issues against `batchframework_batchoperation`, written once.
//!
//! Diesel checks queries per backend, and spelling the trait bounds that would make these
//! functions generic over every backend costs more than it explains. Instead the bodies are
//! written once in [`impl_storage!`] and instantiated for each concrete connection type in
//! `backend/mod.rs`, with the few per-backend choices passed in as keywords (see the macro).
//! The worker's finishing UPDATE, too dynamic for Diesel's DSL, is raw SQL built by
//! [`finish_sql`].
//!
//! Without any backend feature nothing instantiates the macro, so its helpers go unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]

use super::{Dialect, UtcDateTime};
use diesel::{AsChangeset, Insertable};

use crate::schema::batchframework_batchoperation;
use crate::status::{OperationResult, Status};

/// The row written by `create_synchronous` / `create_asynchronous`.
#[doc(hidden)]
#[derive(Debug, Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct NewOperationRow<'a> {
    pub(crate) created_datetime: UtcDateTime,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) context_object_type: Option<&'a str>,
    pub(crate) context_object_id: Option<&'a str>,
    pub(crate) started_by: Option<&'a str>,
    pub(crate) operationtype: &'a str,
    pub(crate) status: Status,
    pub(crate) result: OperationResult,
    pub(crate) input_data_json: &'a str,
    pub(crate) output_data_json: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) priority: i32,
    pub(crate) run_after: Option<UtcDateTime>,
    pub(crate) max_attempts: i32,
}

/// The columns one lifecycle step sets; `None` fields are left as they are.
#[doc(hidden)]
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct StatusChange<'a> {
    pub(crate) status: Status,
    pub(crate) result: Option<OperationResult>,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) finished_datetime: Option<UtcDateTime>,
    pub(crate) output_data_json: Option<&'a str>,
}

/// What a worker writes on an operation it holds: a finish, or a release for retry.
#[doc(hidden)]
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation, treat_none_as_null = true)]
pub struct ClaimedChange<'a> {
    pub(crate) status: Status,
    pub(crate) result: OperationResult,
    pub(crate) finished_datetime: Option<UtcDateTime>,
    pub(crate) output_data_json: &'a str,
    pub(crate) run_after: Option<UtcDateTime>,
    pub(crate) locked_by: Option<&'a str>,
    pub(crate) heartbeat_datetime: Option<UtcDateTime>,
    pub(crate) attempts: i32,
}

/// A final result a worker's keeper writes on an operation it holds.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct FinishedRow<'a> {
    pub(crate) id: i64,
    /// The attempt the worker holds: the operation's `attempts` when it was claimed. A new
    /// claim (after a lost lease) increments it, so the write is fenced per claim, not only per
    /// worker name.
    pub(crate) attempt: i32,
    pub(crate) result: OperationResult,
    pub(crate) finished_at: UtcDateTime,
    pub(crate) output_data_json: &'a str,
}

/// Rows finished by one statement: 8 binds each, under every backend's bind limit.
pub(crate) const FINISH_CHUNK: usize = 500;

/// The bytes a finished row adds to its statement besides its output: its other values and
/// its share of the SQL text (generous; the SQL is about 60 bytes a row).
pub(crate) const FINISH_ROW_OVERHEAD: usize = 256;

/// Splits `rows` into the chunks one finishing UPDATE each writes: at most [`FINISH_CHUNK`]
/// rows and, where the backend limits a statement's size, about `max_bytes`. A row larger than
/// that on its own gets a chunk of its own.
pub(crate) fn finish_chunks<'r, 'a>(
    rows: &'r [FinishedRow<'a>],
    max_bytes: Option<usize>,
) -> Vec<&'r [FinishedRow<'a>]> {
    let max_bytes = max_bytes.unwrap_or(usize::MAX);
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (index, row) in rows.iter().enumerate() {
        let size = row.output_data_json.len() + FINISH_ROW_OVERHEAD;
        let full = index - start == FINISH_CHUNK || bytes.saturating_add(size) > max_bytes;
        if index > start && full {
            chunks.push(&rows[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes = bytes.saturating_add(size);
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// One UPDATE finishing `rows` held operations, each with its own result, finish time and
/// output (CASE on the id), fenced by status, holder and attempt. Binds, in order: the new
/// status; (id, result) × rows; (id, finish time) × rows; (id, output) × rows; the held status;
/// the holder; (id, attempt) × rows.
pub(crate) fn finish_sql(dialect: Dialect, rows: usize, returning: bool) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        dialect.placeholder(n)
    };
    let mut sql = format!(
        "UPDATE batchframework_batchoperation SET status = {}",
        next()
    );
    for column in ["result", "finished_datetime", "output_data_json"] {
        sql.push_str(&format!(", {column} = CASE id"));
        for _ in 0..rows {
            sql.push_str(&format!(" WHEN {} THEN {}", next(), next()));
        }
        sql.push_str(" END");
    }
    sql.push_str(&format!(
        " WHERE status = {} AND locked_by = {} AND (id, attempts) IN (",
        next(),
        next()
    ));
    for row in 0..rows {
        let separator = if row == 0 { "" } else { ", " };
        sql.push_str(&format!("{separator}({}, {})", next(), next()));
    }
    sql.push(')');
    if returning {
        sql.push_str(" RETURNING id");
    }
    sql
}

/// The claim's read of due work: the ids of at most `limit` pending operations of some queues
/// and operation types, due by a bound instant, by priority then age; with `lock`, each row is
/// locked `FOR UPDATE SKIP LOCKED`. Binds, for each type: its queues, the type, the instant.
///
/// One index read per type (`(operationtype, priority DESC, id)` of the claim-by-type
/// migration), merged by `UNION ALL`: a single ordered read across types would step over every
/// pending operation of a type the worker does not know (another service's, or a newer
/// release's) before reaching its own, 45 ms a claim behind 100,000 of them on PostgreSQL. Each
/// type's read locks up to `limit` rows so that concurrent claimers skip each other's rows
/// rather than coming back empty; the rows not taken are unlocked when the claim commits.
pub(crate) fn due_sql(
    dialect: Dialect,
    queues: usize,
    types: usize,
    limit: i64,
    lock: bool,
) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        dialect.placeholder(n)
    };
    let lock = if lock { " FOR UPDATE SKIP LOCKED" } else { "" };
    let mut reads = Vec::with_capacity(types);
    for _ in 0..types {
        let queues = (0..queues).map(|_| next()).collect::<Vec<_>>().join(", ");
        reads.push(format!(
            "SELECT id, priority FROM batchframework_batchoperation \
             WHERE status = 'unprocessed' AND queue IN ({queues}) AND operationtype = {} \
             AND (run_after IS NULL OR run_after <= {}) \
             ORDER BY priority DESC, id LIMIT {limit}{lock}",
            next(),
            next()
        ));
    }
    if reads.len() == 1 {
        return reads.remove(0);
    }
    let union = reads
        .iter()
        .enumerate()
        .map(|(i, read)| format!("SELECT id, priority FROM ({read}) AS due_{i}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!("{union} ORDER BY priority DESC, id LIMIT {limit}")
}

/// An id read by [`due_sql`].
#[derive(diesel::QueryableByName)]
pub(crate) struct DueId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
}

/// An id returned by a raw statement's `RETURNING id`.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[derive(diesel::QueryableByName)]
pub(crate) struct ReturnedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
}

/// The most ids one DELETE of a limited delete names on MySQL/MariaDB, which bind each: well
/// under their 65,535 placeholders, and one statement for the default prune batch.
#[cfg(feature = "mysql")]
pub(crate) const MYSQL_DELETE_CHUNK: usize = 10_000;

/// The PostgreSQL channel on which new due work is announced, with the queue's name as payload
/// (by the triggers of the PostgreSQL migration `..._batchframework_notify_work`).
#[cfg(feature = "postgres")]
pub(crate) const WORK_CHANNEL: &str = "batchframework_work";

/// Implements [`Storage`](super::Storage) for one concrete connection type.
///
/// The keywords, after the connection type and its [`Dialect`](super::Dialect) variant:
///
/// * `returning` (PostgreSQL, SQLite): INSERTs and UPDATEs report their rows with `RETURNING`,
///   and statements have no size limit of their own. `last_insert_id` (MySQL/MariaDB): an
///   INSERT is followed by `SELECT LAST_INSERT_ID()` (per connection, so safe under
///   concurrency), UPDATEs are read back in their transaction, the statement size limit is
///   read from `@@max_allowed_packet`, and a claim runs in READ COMMITTED (see
///   `@before_claim`). These go together: they are what MySQL lacks or needs.
/// * `skip_locked` (PostgreSQL, MySQL): claims lock rows with `FOR UPDATE SKIP LOCKED`;
///   `immediate` (SQLite): claims take the database's write lock up front.
/// * `notify` (PostgreSQL): new work is announced on `WORK_CHANNEL`; `none`: workers only
///   poll.
/// * The path of the backend's embedded migrations.
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(unused_macros)
)]
macro_rules! impl_storage {
    (@insert returning, $conn:ident, $row:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        ::diesel::insert_into(dsl::batchframework_batchoperation)
            .values($row)
            .returning(dsl::id)
            .get_result::<i64>($conn)
    }};
    (@insert last_insert_id, $conn:ident, $row:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        ::diesel::insert_into(dsl::batchframework_batchoperation)
            .values($row)
            .execute($conn)?;
        let id: u64 = ::diesel::select(::diesel::dsl::sql::<
            ::diesel::sql_types::Unsigned<::diesel::sql_types::BigInt>,
        >("LAST_INSERT_ID()"))
        .get_result($conn)?;
        i64::try_from(id).map_err(|e| ::diesel::result::Error::DeserializationError(e.into()))
    }};
    // The claimed rows, as the claim's UPDATE left them: returned by it where the backend
    // can, read back by id where it cannot (MySQL/MariaDB have no UPDATE ... RETURNING).
    (@update_returning returning, $conn:ident, $update:ident, $ids:ident) => {{
        let _ = &$ids;
        $update
            .returning($crate::BatchOperation::as_returning())
            .get_results($conn)?
    }};
    (@update_returning last_insert_id, $conn:ident, $update:ident, $ids:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        $update.execute($conn)?;
        dsl::batchframework_batchoperation
            .filter(dsl::id.eq_any(&$ids))
            .select($crate::BatchOperation::as_select())
            .load($conn)?
    }};
    // The ids a finishing UPDATE wrote: returned by it where the backend can; read back in
    // the same transaction where it cannot (a row is finished, held by `worker` and at the
    // attempt only if this statement wrote it).
    (@finished_ids returning, $conn:ident, $query:ident, $worker:ident, $rows:ident) => {{
        let _ = $worker;
        let _ = $rows;
        $query
            .load::<$crate::backend::storage::ReturnedId>($conn)?
            .into_iter()
            .map(|row| row.id)
            .collect::<::std::collections::HashSet<i64>>()
    }};
    (@finished_ids last_insert_id, $conn:ident, $query:ident, $worker:ident, $rows:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        $query.execute($conn)?;
        let attempts: ::std::collections::HashMap<i64, i32> =
            $rows.iter().map(|row| (row.id, row.attempt)).collect();
        let written: Vec<(i64, i32)> = dsl::batchframework_batchoperation
            .filter(dsl::id.eq_any(attempts.keys()))
            .filter(dsl::status.eq($crate::Status::Finished))
            .filter(dsl::locked_by.eq($worker))
            .select((dsl::id, dsl::attempts))
            .load($conn)?;
        written
            .into_iter()
            .filter(|(id, attempt)| attempts.get(id) == Some(attempt))
            .map(|(id, _)| id)
            .collect::<::std::collections::HashSet<i64>>()
    }};
    (@returns returning) => {
        true
    };
    (@returns last_insert_id) => {
        false
    };
    (@packet returning, $conn:ident) => {{
        let _ = $conn;
        Ok(None)
    }};
    (@packet last_insert_id, $conn:ident) => {{
        let bytes: u64 = ::diesel::select(::diesel::dsl::sql::<
            ::diesel::sql_types::Unsigned<::diesel::sql_types::BigInt>,
        >("@@max_allowed_packet"))
        .get_result($conn)?;
        Ok(Some(usize::try_from(bytes).unwrap_or(usize::MAX)))
    }};
    // MySQL's default REPEATABLE READ makes the claim's locking read take gap locks on the
    // claim index, and an application inserting new operations meanwhile deadlocks with it:
    // the claim runs in READ COMMITTED, which locks only the rows it takes.
    (@before_claim last_insert_id, $conn:ident) => {
        ::diesel::connection::SimpleConnection::batch_execute(
            $conn,
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )?
    };
    (@before_claim returning, $conn:ident) => {};
    // PostgreSQL: the migration's trigger notifies `WORK_CHANNEL` with the queue's name when
    // due work is inserted or released; a worker LISTENs on its keeper connection.
    (@listen notify, $conn:ident) => {{
        ::diesel::connection::SimpleConnection::batch_execute(
            $conn,
            &format!("LISTEN {}", $crate::backend::storage::WORK_CHANNEL),
        )?;
        Ok(true)
    }};
    (@listen none, $conn:ident) => {{
        let _ = $conn;
        Ok(false)
    }};
    (@unlisten notify, $conn:ident) => {
        ::diesel::connection::SimpleConnection::batch_execute($conn, "UNLISTEN *")
    };
    (@unlisten none, $conn:ident) => {{
        let _ = $conn;
        Ok(())
    }};
    (@notifications notify, $conn:ident) => {{
        let mut queues = Vec::new();
        for notification in $conn.notifications_iter() {
            let notification = notification?;
            if notification.channel == $crate::backend::storage::WORK_CHANNEL {
                queues.push(notification.payload);
            }
        }
        Ok(queues)
    }};
    (@notifications none, $conn:ident) => {{
        let _ = $conn;
        Ok(Vec::new())
    }};
    // The ids of the operations of `queues` and `types` whose worker was lost (no heartbeat
    // since `stale_before`), longest lost first.
    (@lost $queues:ident, $types:ident, $stale_before:ident) => {
        $crate::schema::batchframework_batchoperation::table
            .filter($crate::schema::batchframework_batchoperation::status.eq($crate::Status::Running))
            .filter(
                $crate::schema::batchframework_batchoperation::heartbeat_datetime
                    .lt($crate::UtcDateTime($stale_before)),
            )
            .filter($crate::schema::batchframework_batchoperation::queue.eq_any($queues))
            .filter($crate::schema::batchframework_batchoperation::operationtype.eq_any($types))
            .order($crate::schema::batchframework_batchoperation::heartbeat_datetime.asc())
            .select($crate::schema::batchframework_batchoperation::id)
    };
    // The ids of at most `$limit` pending operations of `queues` and `types` due by `now`, by
    // priority then age, row-locked (skipping locked rows) where `$lock` and the backend has row
    // locks: the statement of [`due_sql`], with its binds.
    (@due_ids $conn_type:ty, $dialect:ident, $conn:ident, $queues:ident, $types:ident, $now:ident, $limit:expr, $lock:expr) => {{
        if $queues.is_empty() || $types.is_empty() {
            Ok(Vec::new())
        } else {
            let sql = $crate::backend::storage::due_sql(
                $crate::Dialect::$dialect,
                $queues.len(),
                $types.len(),
                $limit,
                $lock,
            );
            let mut query = ::diesel::sql_query(sql)
                .into_boxed::<<$conn_type as ::diesel::Connection>::Backend>();
            for operation_type in $types {
                for queue in $queues {
                    query = query.bind::<::diesel::sql_types::Varchar, _>(queue.as_str());
                }
                query = query
                    .bind::<::diesel::sql_types::Varchar, _>(operation_type.as_str())
                    .bind::<$crate::UtcTimestamp, _>($crate::UtcDateTime($now));
            }
            query
                .load::<$crate::backend::storage::DueId>($conn)
                .map(|rows| rows.into_iter().map(|row| row.id).collect::<Vec<i64>>())
        }
    }};
    (@row_locks skip_locked) => {
        true
    };
    (@row_locks immediate) => {
        false
    };
    (@lock skip_locked, $query:expr) => {
        $query.for_update().skip_locked()
    };
    (@lock immediate, $query:expr) => {
        $query
    };
    (@claim_transaction skip_locked, $conn:ident, $body:expr) => {
        ::diesel::Connection::transaction($conn, $body)
    };
    // SQLite has no row locks: the claim takes the write lock up front instead.
    (@claim_transaction immediate, $conn:ident, $body:expr) => {
        $conn.immediate_transaction($body)
    };
    (@filter $query:ident, $filter:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let mut query = $query;
        if let Some(operation_type) = &$filter.operation_type {
            query = query.filter(dsl::operationtype.eq(operation_type));
        }
        if let Some((type_key, id)) = $filter.context_object.as_ref().map(|c| c.parts()) {
            query = query
                .filter(dsl::context_object_type.eq(type_key))
                .filter(dsl::context_object_id.eq(id));
        }
        if let Some(status) = $filter.status {
            query = query.filter(dsl::status.eq(status));
        }
        if let Some(created_before) = $filter.created_before {
            query = query.filter(dsl::created_datetime.lt($crate::UtcDateTime(created_before)));
        }
        if let Some(result) = $filter.result {
            query = query.filter(dsl::result.eq(result));
        }
        if let Some(queue) = &$filter.queue {
            query = query.filter(dsl::queue.eq(queue));
        }
        if let Some(started_by) = &$filter.started_by {
            query = query.filter(dsl::started_by.eq(started_by));
        }
        if let Some(created_after) = $filter.created_after {
            query = query.filter(dsl::created_datetime.gt($crate::UtcDateTime(created_after)));
        }
        if let Some(finished_before) = $filter.finished_before {
            query = query.filter(dsl::finished_datetime.lt($crate::UtcDateTime(finished_before)));
        }
        query
    }};
    // Keyset paging: only the operations after `$keyset` in the filter's order. By id the
    // primary key is sought; by creation time the key is (created_datetime, id).
    (@keyset $query:ident, $filter:ident, $keyset:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let mut query = $query;
        if let Some(keyset) = $keyset {
            let descending = $filter.order.is_descending();
            query = match (keyset.created.map($crate::UtcDateTime), descending) {
                (None, true) => query.filter(dsl::id.lt(keyset.id)),
                (None, false) => query.filter(dsl::id.gt(keyset.id)),
                (Some(created), true) => query.filter(
                    dsl::created_datetime
                        .lt(created)
                        .or(dsl::created_datetime.eq(created).and(dsl::id.lt(keyset.id))),
                ),
                (Some(created), false) => query.filter(
                    dsl::created_datetime
                        .gt(created)
                        .or(dsl::created_datetime.eq(created).and(dsl::id.gt(keyset.id))),
                ),
            };
        }
        query
    }};
    // The filter's order on a boxed SELECT; ties in creation time are broken by id.
    (@order $query:ident, $filter:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        use $crate::OperationOrder;
        match $filter.order {
            OperationOrder::IdDescending => $query.order(dsl::id.desc()),
            OperationOrder::IdAscending => $query.order(dsl::id.asc()),
            OperationOrder::CreatedDescending => {
                $query.order((dsl::created_datetime.desc(), dsl::id.desc()))
            }
            OperationOrder::CreatedAscending => {
                $query.order((dsl::created_datetime.asc(), dsl::id.asc()))
            }
        }
    }};
    // A boxed DELETE of the operations in `$status` matching the filter, after `$keyset`.
    (@matching_delete $filter:ident, $keyset:ident, $status:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let delete = ::diesel::delete(dsl::batchframework_batchoperation).into_boxed();
        let delete = $crate::backend::storage::impl_storage!(@filter delete, $filter);
        $crate::backend::storage::impl_storage!(@keyset delete, $filter, $keyset)
            .filter(dsl::status.eq($status))
    }};
    // Deletes the operations in `$status` matching the filter, after `$keyset`; with a limit,
    // at most that many, the first in the filter's order.
    (@delete_matching $dialect:ident, $conn:ident, $filter:ident, $keyset:ident, $status:expr) => {{
        let status: $crate::Status = $status;
        match $filter.limit {
            None => $crate::backend::storage::impl_storage!(@matching_delete $filter, $keyset, status)
                .execute($conn),
            Some(limit) => $crate::backend::storage::impl_storage!(
                @delete_limited $dialect, $conn, $filter, $keyset, status, limit
            ),
        }
    }};
    // The ids a limited DELETE removes: the first `$limit` in `$status` matching the filter,
    // in its order. The DELETE repeats the conditions, so a row changed meanwhile (a pending
    // operation claimed by a worker) is not deleted.
    (@limited_ids $filter:ident, $keyset:ident, $status:ident, $limit:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let ids = dsl::batchframework_batchoperation.select(dsl::id).into_boxed();
        let ids = $crate::backend::storage::impl_storage!(@filter ids, $filter);
        let ids = $crate::backend::storage::impl_storage!(@keyset ids, $filter, $keyset);
        $crate::backend::storage::impl_storage!(@order ids, $filter)
            .filter(dsl::status.eq($status))
            .limit(i64::from($limit))
    }};
    // PostgreSQL, one statement: `id = ANY(ARRAY(subquery))`. The array is computed once and
    // each id sought in the primary key; as `IN (subquery)` the planner hash-joins a scan of the
    // whole table once a batch has a few thousand rows, so each batch would cost the table.
    (@delete_limited Postgres, $conn:ident, $filter:ident, $keyset:ident, $status:ident, $limit:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let ids = $crate::backend::storage::impl_storage!(@limited_ids $filter, $keyset, $status, $limit);
        $crate::backend::storage::impl_storage!(@matching_delete $filter, $keyset, $status)
            .filter(dsl::id.eq_any(::diesel::dsl::array::<::diesel::sql_types::BigInt, _>(ids)))
            .execute($conn)
    }};
    // SQLite, one statement: `id IN (subquery)`, which it runs once, then seeks each rowid.
    (@delete_limited Sqlite, $conn:ident, $filter:ident, $keyset:ident, $status:ident, $limit:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let ids = $crate::backend::storage::impl_storage!(@limited_ids $filter, $keyset, $status, $limit);
        $crate::backend::storage::impl_storage!(@matching_delete $filter, $keyset, $status)
            .filter(dsl::id.eq_any(ids))
            .execute($conn)
    }};
    // MySQL/MariaDB: the ids are read first, then deleted by id. They cannot LIMIT a subquery
    // under IN; a derived table around it makes MariaDB scan the whole table per statement; and
    // MariaDB plans `DELETE ... ORDER BY id LIMIT n` through a status index and sorts every
    // matching row per statement. The SELECT walks the primary key and takes no locks; each
    // DELETE seeks its ids in the primary key and locks only the rows it deletes.
    (@delete_limited Mysql, $conn:ident, $filter:ident, $keyset:ident, $status:ident, $limit:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let ids: Vec<i64> =
            $crate::backend::storage::impl_storage!(@limited_ids $filter, $keyset, $status, $limit)
                .load($conn)?;
        let mut deleted = 0;
        for chunk in ids.chunks($crate::backend::storage::MYSQL_DELETE_CHUNK) {
            deleted += $crate::backend::storage::impl_storage!(@matching_delete $filter, $keyset, $status)
                .filter(dsl::id.eq_any(chunk))
                .execute($conn)?;
        }
        Ok(deleted)
    }};
    ($conn_type:ty, $dialect:ident, $insert:ident, $locking:ident, $notify:ident, $migrations:path) => {
        impl $crate::backend::Storage for $conn_type {
            fn claim_operations(
                &mut self,
                worker: &str,
                queues: &[String],
                operation_types: &[String],
                now: ::chrono::DateTime<::chrono::Utc>,
                stale_before: ::chrono::DateTime<::chrono::Utc>,
                limit: i64,
            ) -> ::diesel::QueryResult<Vec<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                use $crate::{Status, UtcDateTime};
                let conn = self;
                $crate::backend::storage::impl_storage!(@before_claim $insert, conn);
                $crate::backend::storage::impl_storage!(@claim_transaction $locking, conn, |conn| {
                    // A lost worker's operations first (the running index), they have waited
                    // longest; then due work by priority then age, one index range per
                    // operation type (`due_sql`).
                    let lost = $crate::backend::storage::impl_storage!(@lost queues, operation_types, stale_before)
                        .limit(limit);
                    let mut ids: Vec<i64> =
                        $crate::backend::storage::impl_storage!(@lock $locking, lost).load(conn)?;
                    let room = limit - i64::try_from(ids.len()).unwrap_or(limit);
                    if room > 0 {
                        let due: Vec<i64> = $crate::backend::storage::impl_storage!(
                            @due_ids $conn_type, $dialect, conn, queues, operation_types, now, room,
                            $crate::backend::storage::impl_storage!(@row_locks $locking)
                        )?;
                        ids.extend(due);
                    }
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let claim = ::diesel::update(
                        dsl::batchframework_batchoperation.filter(dsl::id.eq_any(&ids)),
                    )
                    .set((
                        dsl::status.eq(Status::Running),
                        dsl::started_running_datetime.eq(UtcDateTime(now)),
                        dsl::locked_by.eq(worker),
                        dsl::heartbeat_datetime.eq(UtcDateTime(now)),
                        dsl::attempts.eq(dsl::attempts + 1),
                    ));
                    let mut claimed: Vec<$crate::BatchOperation> =
                        $crate::backend::storage::impl_storage!(@update_returning $insert, conn, claim, ids);
                    claimed.sort_by_key(|op| (::std::cmp::Reverse(op.priority()), op.id()));
                    Ok(claimed)
                })
            }

            fn has_claimable(
                &mut self,
                queues: &[String],
                operation_types: &[String],
                now: ::chrono::DateTime<::chrono::Utc>,
                stale_before: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::diesel::QueryResult<bool> {
                use ::diesel::prelude::*;
                let lost = $crate::backend::storage::impl_storage!(@lost queues, operation_types, stale_before)
                    .first::<i64>(self)
                    .optional()?;
                if lost.is_some() {
                    return Ok(true);
                }
                let conn = self;
                let due: Vec<i64> = $crate::backend::storage::impl_storage!(
                    @due_ids $conn_type, $dialect, conn, queues, operation_types, now, 1, false
                )?;
                Ok(!due.is_empty())
            }

            fn change_claimed(
                &mut self,
                id: i64,
                attempt: i32,
                worker: &str,
                change: &$crate::backend::storage::ClaimedChange<'_>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running))
                        .filter(dsl::locked_by.eq(worker))
                        .filter(dsl::attempts.eq(attempt)),
                )
                .set(change)
                .execute(self)
            }

            fn finish_claimed(
                &mut self,
                worker: &str,
                rows: &[$crate::backend::storage::FinishedRow<'_>],
                max_statement_bytes: Option<usize>,
            ) -> ::diesel::QueryResult<Vec<bool>> {
                use ::diesel::prelude::*;
                use ::diesel::sql_types::{BigInt, Integer, Text};
                use $crate::backend::storage::{finish_chunks, finish_sql};
                let conn = self;
                $crate::backend::storage::impl_storage!(@claim_transaction $locking, conn, |conn| {
                    let mut written = ::std::collections::HashSet::new();
                    for chunk in finish_chunks(rows, max_statement_bytes) {
                        let returning = $crate::backend::storage::impl_storage!(@returns $insert);
                        let sql = finish_sql($crate::Dialect::$dialect, chunk.len(), returning);
                        let mut query = ::diesel::sql_query(sql)
                            .into_boxed()
                            .bind::<Text, _>($crate::Status::Finished);
                        for row in chunk {
                            query = query.bind::<BigInt, _>(row.id).bind::<Text, _>(row.result);
                        }
                        for row in chunk {
                            query = query
                                .bind::<BigInt, _>(row.id)
                                .bind::<$crate::UtcTimestamp, _>(row.finished_at);
                        }
                        for row in chunk {
                            query = query
                                .bind::<BigInt, _>(row.id)
                                .bind::<Text, _>(row.output_data_json);
                        }
                        query = query
                            .bind::<Text, _>($crate::Status::Running)
                            .bind::<Text, _>(worker);
                        for row in chunk {
                            query = query.bind::<BigInt, _>(row.id).bind::<Integer, _>(row.attempt);
                        }
                        let chunk_written = $crate::backend::storage::impl_storage!(
                            @finished_ids $insert, conn, query, worker, chunk
                        );
                        written.extend(chunk_written);
                    }
                    Ok(rows.iter().map(|row| written.contains(&row.id)).collect())
                })
            }

            fn listen_for_work(&mut self) -> ::diesel::QueryResult<bool> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@listen $notify, conn)
            }

            fn stop_listening(&mut self) -> ::diesel::QueryResult<()> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@unlisten $notify, conn)
            }

            fn work_notifications(&mut self) -> ::diesel::QueryResult<Vec<String>> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@notifications $notify, conn)
            }

            fn heartbeat(
                &mut self,
                worker: &str,
                ids: &[i64],
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq_any(ids))
                        .filter(dsl::status.eq($crate::Status::Running))
                        .filter(dsl::locked_by.eq(worker)),
                )
                .set(dsl::heartbeat_datetime.eq($crate::UtcDateTime(now)))
                .execute(self)
            }

            const DIALECT: $crate::Dialect = $crate::Dialect::$dialect;

            fn max_packet_bytes(&mut self) -> ::diesel::QueryResult<Option<usize>> {
                #[allow(unused_imports)]
                use ::diesel::prelude::*;
                let conn = self;
                $crate::backend::storage::impl_storage!(@packet $insert, conn)
            }

            fn run_embedded_migrations(
                &mut self,
            ) -> Result<Vec<String>, Box<dyn ::std::error::Error + Send + Sync>> {
                use ::diesel_migrations::MigrationHarness;
                let applied = self.run_pending_migrations($migrations)?;
                Ok(applied.iter().map(ToString::to_string).collect())
            }

            fn insert_operation(
                &mut self,
                row: &$crate::backend::storage::NewOperationRow<'_>,
            ) -> ::diesel::QueryResult<i64> {
                use ::diesel::prelude::*;
                let conn = self;
                $crate::backend::storage::impl_storage!(@insert $insert, conn, row)
            }

            fn change_status(
                &mut self,
                id: i64,
                from: $crate::Status,
                change: &$crate::backend::storage::StatusChange<'_>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq(from)),
                )
                .set(change)
                .execute(self)
            }

            fn update_progress(
                &mut self,
                id: i64,
                done: i64,
                total: Option<i64>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running)),
                )
                .set((dsl::progress_done.eq(done), dsl::progress_total.eq(total)))
                .execute(self)
            }

            fn request_cancel(&mut self, id: i64) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running)),
                )
                .set(dsl::cancel_requested.eq(true))
                .execute(self)
            }

            fn cancel_requested(&mut self, id: i64) -> ::diesel::QueryResult<Option<bool>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                dsl::batchframework_batchoperation
                    .find(id)
                    .select(dsl::cancel_requested)
                    .first(self)
                    .optional()
            }

            fn find_operation(
                &mut self,
                id: i64,
            ) -> ::diesel::QueryResult<Option<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                dsl::batchframework_batchoperation
                    .find(id)
                    .select($crate::BatchOperation::as_select())
                    .first(self)
                    .optional()
            }

            fn load_operations(
                &mut self,
                filter: &$crate::OperationFilter,
                keyset: Option<$crate::filter::Keyset>,
            ) -> ::diesel::QueryResult<Vec<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                let query = dsl::batchframework_batchoperation
                    .select($crate::BatchOperation::as_select())
                    .into_boxed();
                let query = $crate::backend::storage::impl_storage!(@filter query, filter);
                let query = $crate::backend::storage::impl_storage!(@keyset query, filter, keyset);
                let query = $crate::backend::storage::impl_storage!(@order query, filter);
                match filter.limit {
                    Some(limit) => query.limit(i64::from(limit)).load(self),
                    None => query.load(self),
                }
            }

            fn operation_created(
                &mut self,
                id: i64,
            ) -> ::diesel::QueryResult<Option<::chrono::DateTime<::chrono::Utc>>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                dsl::batchframework_batchoperation
                    .find(id)
                    .select(dsl::created_datetime)
                    .first(self)
                    .optional()
            }

            fn count_operations(
                &mut self,
                filter: &$crate::OperationFilter,
            ) -> ::diesel::QueryResult<i64> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                let query = dsl::batchframework_batchoperation.into_boxed();
                let query = $crate::backend::storage::impl_storage!(@filter query, filter);
                query.count().get_result(self)
            }

            fn delete_pending(
                &mut self,
                filter: &$crate::OperationFilter,
                keyset: Option<$crate::filter::Keyset>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                let conn = self;
                // Only pending work is removable: a running or finished operation has an owner
                // or a record to keep, whatever else the filter says.
                $crate::backend::storage::impl_storage!(
                    @delete_matching $dialect, conn, filter, keyset, $crate::Status::Unprocessed
                )
            }

            fn delete_finished(
                &mut self,
                filter: &$crate::OperationFilter,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                let conn = self;
                let keyset: Option<$crate::filter::Keyset> = None;
                // Only finished operations are prunable: pending and running ones are work
                // still to do, whatever else the filter says.
                $crate::backend::storage::impl_storage!(
                    @delete_matching $dialect, conn, filter, keyset, $crate::Status::Finished
                )
            }
        }
    };
}
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(unused_imports)
)]
pub(crate) use impl_storage;

#[cfg(test)]
mod tests {
    use super::{
        due_sql, finish_chunks, finish_sql, Dialect, FinishedRow, FINISH_CHUNK, FINISH_ROW_OVERHEAD,
    };
    use crate::backend::UtcDateTime;
    use crate::status::OperationResult;

    fn row(id: i64, output: &str) -> FinishedRow<'_> {
        FinishedRow {
            id,
            attempt: 1,
            result: OperationResult::Successful,
            finished_at: UtcDateTime(chrono::Utc::now()),
            output_data_json: output,
        }
    }

    #[test]
    fn a_claim_reads_each_type_from_its_own_index_range() {
        let one = due_sql(Dialect::Postgres, 2, 1, 10, true);
        assert_eq!(
            one,
            "SELECT id, priority FROM batchframework_batchoperation WHERE status = 'unprocessed' \
             AND queue IN ($1, $2) AND operationtype = $3 \
             AND (run_after IS NULL OR run_after <= $4) \
             ORDER BY priority DESC, id LIMIT 10 FOR UPDATE SKIP LOCKED"
        );
        let three = due_sql(Dialect::Sqlite, 1, 3, 5, false);
        assert_eq!(three.matches("operationtype = ?").count(), 3);
        assert_eq!(three.matches('?').count(), 9);
        assert_eq!(three.matches(" UNION ALL ").count(), 2);
        assert!(!three.contains("FOR UPDATE"));
        assert!(three.ends_with(") AS due_2 ORDER BY priority DESC, id LIMIT 5"));
        let mysql = due_sql(Dialect::Mysql, 1, 2, 5, true);
        assert_eq!(
            mysql
                .matches("LIMIT 5 FOR UPDATE SKIP LOCKED) AS due_")
                .count(),
            2
        );
    }

    #[test]
    fn chunks_hold_at_most_500_rows_and_stay_under_the_statement_budget() {
        let small: Vec<_> = (0..1_001).map(|id| row(id, "{}")).collect();
        let sizes: Vec<usize> = finish_chunks(&small, None)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [FINISH_CHUNK, FINISH_CHUNK, 1]);

        let output = "x".repeat(1_000);
        let large: Vec<_> = (0..10).map(|id| row(id, &output)).collect();
        let budget = 3 * (1_000 + FINISH_ROW_OVERHEAD);
        let sizes: Vec<usize> = finish_chunks(&large, Some(budget))
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [3, 3, 3, 1]);

        // A row over the budget alone still gets written, in a chunk of its own.
        let sizes: Vec<usize> = finish_chunks(&large[..2], Some(10))
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1, 1]);
        assert!(finish_chunks(&[], Some(10)).is_empty());
    }

    #[test]
    fn the_finishing_update_numbers_its_binds_in_bind_order() {
        assert_eq!(
            finish_sql(Dialect::Postgres, 2, true),
            "UPDATE batchframework_batchoperation SET status = $1, \
             result = CASE id WHEN $2 THEN $3 WHEN $4 THEN $5 END, \
             finished_datetime = CASE id WHEN $6 THEN $7 WHEN $8 THEN $9 END, \
             output_data_json = CASE id WHEN $10 THEN $11 WHEN $12 THEN $13 END \
             WHERE status = $14 AND locked_by = $15 AND (id, attempts) IN (($16, $17), ($18, $19)) \
             RETURNING id"
        );
    }

    #[test]
    fn a_full_chunk_stays_under_every_bind_limit() {
        let sql = finish_sql(Dialect::Mysql, FINISH_CHUNK, false);
        let binds = sql.matches('?').count();
        assert_eq!(binds, 1 + 6 * FINISH_CHUNK + 2 + 2 * FINISH_CHUNK);
        assert!(!sql.contains("RETURNING"));
        for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::Mysql] {
            if let Some(limit) = dialect.max_binds() {
                assert!(binds <= limit, "{dialect:?}");
            }
        }
    }
}
