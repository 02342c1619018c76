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
