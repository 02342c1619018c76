//! The worker statements written as SQL text: the claim's read of due work, one index range
//! per operation type, and the keeper's finishing UPDATE of a whole group, each row with its
//! own values. Both have a number of parts known only at run time, which Diesel's DSL cannot
//! give one type; their binds are still parameters, and their texts are unit-tested here.

use super::super::{Dialect, UtcDateTime};
use crate::status::OperationResult;

/// A final result a worker's keeper writes on an operation it holds.
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

/// Rows finished by one statement: 9 binds each, under every backend's bind limit.
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
/// status; (id, result) × rows; (id, finish time) × rows; (id, output) × rows; id × rows; the
/// holder; (id, attempt) × rows. SQLite and MySQL/MariaDB finish with it; PostgreSQL with
/// [`PG_FINISH_SQL`], which takes the values as arrays.
///
/// The rows are named by `id IN (...)` as well as by `(id, attempts) IN (...)`: planners seek a
/// plain list of ids in the primary key, where a list of pairs alone can lead them (SQLite
/// always, PostgreSQL before its first ANALYZE) to scan an index of every active operation.
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
    let ids: Vec<String> = (0..rows).map(|_| next()).collect();
    sql.push_str(&format!(
        " WHERE id IN ({}) AND status = 'running' AND locked_by = {} AND (id, attempts) IN (",
        ids.join(", "),
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

/// PostgreSQL's finishing UPDATE of a chunk: the rows' values as arrays of equal length,
/// unnested into one row each, fenced by status, holder and attempt as [`finish_sql`]. Binds:
/// the new status; ids; attempts; results; finish times; outputs; the holder.
///
/// The same statement announces the ids it finished, comma-separated, on the channel
/// `batchframework_finished` (delivered at commit), for `BatchOperation::wait`: one
/// notification per chunk, without another round trip. A list longer than a notification
/// holds (a chunk of 500 ids of 15 digits and more) is announced as an empty payload, "some
/// finished".
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const PG_FINISH_SQL: &str = "WITH done AS (\
     UPDATE batchframework_batchoperation AS op \
     SET status = $1, result = given.result, finished_datetime = given.finished_at, \
     output_data_json = given.output \
     FROM unnest($2::bigint[], $3::integer[], $4::text[], $5::timestamptz[], $6::text[]) \
     AS given(id, attempt, result, finished_at, output) \
     WHERE op.id = given.id AND op.attempts = given.attempt AND op.status = 'running' \
     AND op.locked_by = $7 \
     RETURNING op.id), \
     announced AS (SELECT pg_notify('batchframework_finished', \
     CASE WHEN length(ids) <= 7900 THEN ids ELSE '' END) \
     FROM (SELECT string_agg(id::text, ',') AS ids FROM done) AS finished \
     WHERE ids IS NOT NULL) \
     SELECT done.id FROM done CROSS JOIN (SELECT count(*) FROM announced) AS sent";

/// The claim's read of due work: the ids of at most `limit` pending operations of some queues
/// and operation types, due by a bound instant, by priority then age; with `lock`, each row is
/// locked `FOR UPDATE SKIP LOCKED`. Binds, for each type: the type and its queues (immediate
/// work), then the type, its queues and the instant (delayed work).
///
/// Two index reads per type, merged by `UNION ALL`:
///
/// * immediate work (`run_after IS NULL`) by priority then id, from the `due_now` index (on
///   MySQL/MariaDB, the `due` index under the equality `run_after IS NULL`), at most `limit`,
///   locked `FOR UPDATE SKIP LOCKED` with `lock`, so that concurrent claimers skip each other's
///   rows rather than coming back empty (the rows not taken are unlocked when the claim
///   commits);
/// * delayed work and retries in backoff that are due (`run_after <= now`), soonest first, from
///   the `due_later` index (on MySQL/MariaDB, a range of the `due` index): a range that holds
///   only the rows already due, however many wait for later. Up to `DUE_WINDOW` (100) of them are
///   read, unlocked: the candidates among which priority decides, of which the claim then
///   locks the ones it takes (`is_delayed` is 1 on these rows).
///
/// The first `limit` candidates by priority then id are returned, so a high-priority operation
/// that has become due goes before low-priority immediate work, and among due delayed work
/// priority decides within the window of the soonest due.
///
/// One read per type: a single ordered read across types would step over every pending
/// operation of a type the worker does not know (another service's, or a newer release's)
/// before reaching its own. The reads repeat their partial index's `WHERE` terms word for word,
/// which SQLite needs to use it.
pub fn due_sql(dialect: Dialect, queues: usize, types: usize, limit: i64, lock: bool) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        dialect.placeholder(n)
    };
    let lock = if lock { " FOR UPDATE SKIP LOCKED" } else { "" };
    let window = limit.max(DUE_WINDOW);
    // SQLite's and MySQL's planners prefer the index with the most equalities (the `active`
    // index: queue, status, run_after) and then sort the queue's whole backlog by priority; they
    // are told which index to read (PostgreSQL, whose plans weigh the sort, picks it itself).
    let (now_index, later_index) = match dialect {
        Dialect::Sqlite => (
            " INDEXED BY batchframework_batchoperation_due_now_idx",
            " INDEXED BY batchframework_batchoperation_due_later_idx",
        ),
        Dialect::Mysql => (
            " FORCE INDEX (batchframework_batchoperation_due_idx)",
            " FORCE INDEX (batchframework_batchoperation_due_idx)",
        ),
        Dialect::Postgres => ("", ""),
    };
    // A BIGINT constant: MySQL/MariaDB cast to SIGNED.
    let flag = |value: u8| match dialect {
        Dialect::Mysql => format!("CAST({value} AS SIGNED)"),
        Dialect::Postgres | Dialect::Sqlite => format!("CAST({value} AS BIGINT)"),
    };
    let (immediate, delayed) = (flag(0), flag(1));
    let mut reads = Vec::with_capacity(2 * types);
    for _ in 0..types {
        let (kind, listed) = (next(), placeholders(&mut next, queues));
        reads.push(format!(
            "SELECT id, priority, {immediate} AS is_delayed \
             FROM batchframework_batchoperation{now_index} \
             WHERE status = 'unprocessed' AND run_after IS NULL \
             AND operationtype = {kind} AND queue IN ({listed}) \
             ORDER BY priority DESC, id LIMIT {limit}{lock}"
        ));
        let (kind, listed, now) = (next(), placeholders(&mut next, queues), next());
        reads.push(format!(
            "SELECT id, priority, {delayed} AS is_delayed \
             FROM batchframework_batchoperation{later_index} \
             WHERE status = 'unprocessed' AND run_after IS NOT NULL \
             AND operationtype = {kind} AND queue IN ({listed}) AND run_after <= {now} \
             ORDER BY run_after, id LIMIT {window}"
        ));
    }
    let union = reads
        .iter()
        .enumerate()
        .map(|(i, read)| format!("SELECT id, priority, is_delayed FROM ({read}) AS due_{i}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!("{union} ORDER BY priority DESC, id LIMIT {limit}")
}

/// The claim's read of lost work: the ids of at most `limit` running operations of some queues
/// and operation types whose holder's heartbeat is older than a bound instant (a lost worker),
/// longest lost first, locked `FOR UPDATE SKIP LOCKED` with `lock`. Binds: the instant, the
/// queues, the types.
///
/// It reads the `running` index (heartbeat order, running operations only), named for SQLite
/// and MySQL/MariaDB: left alone, their planners prefer the index on `operationtype` (an
/// equality) and sort every operation of the type, history included, on every claim.
pub(crate) fn lost_sql(
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
    let index = match dialect {
        Dialect::Sqlite => " INDEXED BY batchframework_batchoperation_running_idx",
        Dialect::Mysql => " FORCE INDEX (batchframework_batchoperation_running_idx)",
        Dialect::Postgres => "",
    };
    let lock = if lock { " FOR UPDATE SKIP LOCKED" } else { "" };
    let stale_before = next();
    let queues = placeholders(&mut next, queues);
    let types = placeholders(&mut next, types);
    format!(
        "SELECT id FROM batchframework_batchoperation{index} \
         WHERE status = 'running' AND heartbeat_datetime < {stale_before} \
         AND queue IN ({queues}) AND operationtype IN ({types}) \
         ORDER BY heartbeat_datetime LIMIT {limit}{lock}"
    )
}

/// The settings of `queues` (whether each is paused), their rows locked in share mode with
/// `lock`: a claim holds them until it commits, so that pausing a queue (an `UPDATE` of its
/// row) waits for the claims in flight, and no claim from it starts after the pause returns.
/// SQLite needs no lock: its writers are serialised. Binds: the queues.
pub(crate) fn queue_settings_sql(dialect: Dialect, queues: usize, lock: bool) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        dialect.placeholder(n)
    };
    let queues = placeholders(&mut next, queues);
    let lock = match dialect {
        _ if !lock => "",
        Dialect::Postgres => " FOR SHARE",
        Dialect::Mysql => " LOCK IN SHARE MODE",
        Dialect::Sqlite => "",
    };
    format!("SELECT queue, paused FROM batchframework_queue WHERE queue IN ({queues}){lock}")
}

/// How many of the soonest due delayed operations of a type a claim considers (at least its
/// own size): among them priority decides. A due delayed operation behind more than this many
/// earlier-due ones of the same type waits until they are taken, whatever its priority.
pub(crate) const DUE_WINDOW: i64 = 100;

/// `count` placeholders, comma-separated.
fn placeholders(next: &mut impl FnMut() -> String, count: usize) -> String {
    (0..count).map(|_| next()).collect::<Vec<_>>().join(", ")
}

/// An id read by [`lost_sql`].
#[derive(Debug, diesel::QueryableByName)]
pub(crate) struct LostId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
}

/// The answer of a session lock function: 1 when taken (or released), 0 or NULL otherwise.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, diesel::QueryableByName)]
pub(crate) struct LockAnswer {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    pub(crate) locked: Option<i64>,
}

/// A row read by [`queue_settings_sql`].
#[derive(Debug, diesel::QueryableByName)]
pub(crate) struct QueueSetting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) queue: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub(crate) paused: bool,
}

/// A candidate read by [`due_sql`].
#[derive(Debug, diesel::QueryableByName)]
pub(crate) struct DueId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
    /// 1 for delayed work, read without a lock.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) is_delayed: i64,
}

/// An id returned by a raw statement's `RETURNING id`.
#[derive(diesel::QueryableByName)]
pub(crate) struct ReturnedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
}

#[cfg(test)]
mod tests {
    use super::{
        due_sql, finish_chunks, finish_sql, lost_sql, Dialect, FinishedRow, FINISH_CHUNK,
        FINISH_ROW_OVERHEAD,
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
    fn a_claim_reads_each_type_from_its_own_index_ranges() {
        let one = due_sql(Dialect::Postgres, 2, 1, 10, true);
        assert_eq!(
            one,
            "SELECT id, priority, is_delayed FROM (SELECT id, priority, CAST(0 AS BIGINT) AS is_delayed \
             FROM batchframework_batchoperation \
             WHERE status = 'unprocessed' AND run_after IS NULL \
             AND operationtype = $1 AND queue IN ($2, $3) \
             ORDER BY priority DESC, id LIMIT 10 FOR UPDATE SKIP LOCKED) AS due_0 \
             UNION ALL SELECT id, priority, is_delayed FROM (SELECT id, priority, \
             CAST(1 AS BIGINT) AS is_delayed FROM batchframework_batchoperation \
             WHERE status = 'unprocessed' AND run_after IS NOT NULL \
             AND operationtype = $4 AND queue IN ($5, $6) AND run_after <= $7 \
             ORDER BY run_after, id LIMIT 100) AS due_1 \
             ORDER BY priority DESC, id LIMIT 10"
        );
        let three = due_sql(Dialect::Sqlite, 1, 3, 5, false);
        assert_eq!(three.matches("operationtype = ?").count(), 6);
        assert_eq!(three.matches("run_after <= ?").count(), 3);
        assert_eq!(three.matches('?').count(), 15);
        assert_eq!(three.matches(" UNION ALL ").count(), 5);
        assert!(!three.contains("FOR UPDATE"));
        assert!(three.ends_with(") AS due_5 ORDER BY priority DESC, id LIMIT 5"));
        let mysql = due_sql(Dialect::Mysql, 1, 2, 5, true);
        assert_eq!(
            mysql
                .matches("LIMIT 5 FOR UPDATE SKIP LOCKED) AS due_")
                .count(),
            2
        );
        assert_eq!(mysql.matches("LIMIT 100) AS due_").count(), 2);
        assert_eq!(mysql.matches("CAST(1 AS SIGNED) AS is_delayed").count(), 2);
    }

    #[test]
    fn the_lost_read_names_the_running_index_where_planners_would_not_pick_it() {
        assert_eq!(
            lost_sql(Dialect::Postgres, 2, 1, 10, true),
            "SELECT id FROM batchframework_batchoperation \
             WHERE status = 'running' AND heartbeat_datetime < $1 \
             AND queue IN ($2, $3) AND operationtype IN ($4) \
             ORDER BY heartbeat_datetime LIMIT 10 FOR UPDATE SKIP LOCKED"
        );
        let sqlite = lost_sql(Dialect::Sqlite, 1, 2, 1, false);
        assert!(sqlite.contains(" INDEXED BY batchframework_batchoperation_running_idx "));
        assert!(sqlite.ends_with("LIMIT 1"));
        let mysql = lost_sql(Dialect::Mysql, 1, 1, 5, true);
        assert!(mysql.contains(" FORCE INDEX (batchframework_batchoperation_running_idx) "));
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
             WHERE id IN ($14, $15) AND status = 'running' AND locked_by = $16 \
             AND (id, attempts) IN (($17, $18), ($19, $20)) RETURNING id"
        );
    }

    #[test]
    fn a_full_chunk_stays_under_every_bind_limit() {
        let sql = finish_sql(Dialect::Mysql, FINISH_CHUNK, false);
        let binds = sql.matches('?').count();
        assert_eq!(
            binds,
            1 + 6 * FINISH_CHUNK + FINISH_CHUNK + 1 + 2 * FINISH_CHUNK
        );
        assert!(!sql.contains("RETURNING"));
        for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::Mysql] {
            if let Some(limit) = dialect.max_binds() {
                assert!(binds <= limit, "{dialect:?}");
            }
        }
    }
}
