//! The statements about batches (see [`crate::batch`]): a batch's counts row, and the children
//! of one parent.
//!
//! Written as SQL text with the dialect's placeholders: each is one short statement whose text
//! is the same on every backend but for the placeholders, and Diesel's DSL would need a named
//! type for each in [`Storage`](super::Storage)'s bounds. Their texts are unit-tested below.
//! The reads of a batch's children repeat the WHERE terms of the partial index they use
//! (`parent_id IS NOT NULL AND status <> 'finished'`, `... AND result = 'failed'`) word for
//! word, which SQLite needs to use it.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{Insertable, QueryableByName};

use super::{Dialect, UtcDateTime};
use crate::schema::batchframework_batchoperation;

/// A batch's counts and callbacks, as its row holds them. Public only because
/// [`Storage`](super::Storage) names it.
#[derive(Debug, Clone, QueryableByName)]
pub struct BatchRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) operation_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) total: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) succeeded: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) failed: i64,
    #[diesel(sql_type = Text)]
    pub(crate) callbacks_json: String,
    /// Whether the batch is a workflow, whose children release one another.
    #[diesel(sql_type = Bool)]
    pub(crate) workflow: bool,
}

/// One id read by a batch statement. Public only because [`Storage`](super::Storage) names it.
#[derive(Debug, QueryableByName)]
pub struct BatchMemberId {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
}

/// A child operation as a batch's bulk enqueue writes it: pending, pointing at its parent.
/// Public only because [`Storage`](super::Storage) names it.
#[crate::bulk_insertable]
#[derive(Debug, Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct ChildRow {
    pub(crate) created_datetime: UtcDateTime,
    pub(crate) context_object_type: Option<String>,
    pub(crate) context_object_id: Option<String>,
    pub(crate) started_by: Option<String>,
    pub(crate) operationtype: String,
    pub(crate) status: &'static str,
    pub(crate) result: &'static str,
    pub(crate) input_data_json: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) run_after: Option<UtcDateTime>,
    pub(crate) max_attempts: i32,
    pub(crate) parent_id: i64,
}

/// Creates a batch's row. Binds: the parent's id, the total, the callbacks, whether it is a
/// workflow.
///
/// The newest column is named with its table on MySQL/MariaDB, whose error for a database
/// migrated by an older release then names the table (and says to migrate: `NotMigrated`);
/// PostgreSQL's and SQLite's name it anyway.
pub(crate) fn insert_batch_sql(dialect: Dialect) -> String {
    let p = |n| dialect.placeholder(n);
    let workflow = match dialect {
        Dialect::Mysql => "batchframework_batch.workflow",
        Dialect::Postgres | Dialect::Sqlite => "workflow",
    };
    format!(
        "INSERT INTO batchframework_batch \
         (operation_id, total, succeeded, failed, callbacks_json, {workflow}) \
         VALUES ({}, {}, 0, 0, {}, {})",
        p(1),
        p(2),
        p(3),
        p(4)
    )
}

/// Adds children finished each way to a batch's counts; the row stays locked until the
/// transaction ends. Binds: succeeded, failed, the parent's id.
pub(crate) fn add_to_batch_sql(dialect: Dialect) -> String {
    let p = |n| dialect.placeholder(n);
    format!(
        "UPDATE batchframework_batch SET succeeded = succeeded + {}, failed = failed + {} \
         WHERE operation_id = {}",
        p(1),
        p(2),
        p(3)
    )
}

/// PostgreSQL: adds to the counts of several batches in one statement, returning their rows
/// as changed. Binds: the parents' ids (ascending, the order the rows are locked in), and for
/// each the children succeeded and failed, as arrays. Columns are named with their table, so
/// that a database migrated by an older release gets an error that names it (`NotMigrated`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const PG_ADD_TO_BATCHES_SQL: &str = "UPDATE batchframework_batch \
     SET succeeded = batchframework_batch.succeeded + tally.succeeded, \
     failed = batchframework_batch.failed + tally.failed \
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) \
     AS tally(operation_id, succeeded, failed) \
     WHERE batchframework_batch.operation_id = tally.operation_id \
     RETURNING batchframework_batch.operation_id, batchframework_batch.total, \
     batchframework_batch.succeeded, batchframework_batch.failed, \
     batchframework_batch.callbacks_json, batchframework_batch.workflow";

/// Adds children finished to the counts of the batches `counts` names (parent, succeeded,
/// failed), one `UPDATE` and one read of each, in the order given; returns the rows as
/// changed (a parent that is no batch has none). How SQLite and MySQL/MariaDB do it.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn add_one_by_one<C>(
    conn: &mut C,
    dialect: Dialect,
    counts: &[(i64, i64, i64)],
) -> diesel::QueryResult<Vec<BatchRow>>
where
    C: diesel::connection::LoadConnection,
    i64: diesel::serialize::ToSql<BigInt, C::Backend>,
    C::Backend: diesel::sql_types::HasSqlType<BigInt>,
    for<'a> diesel::query_builder::BoxedSqlQuery<'a, C::Backend, diesel::query_builder::SqlQuery>:
        diesel::query_dsl::LoadQuery<'a, C, BatchRow> + diesel::query_dsl::methods::ExecuteDsl<C>,
{
    use diesel::RunQueryDsl;
    let mut rows = Vec::new();
    for &(parent, succeeded, failed) in counts {
        let changed = diesel::sql_query(add_to_batch_sql(dialect))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(succeeded)
            .bind::<BigInt, _>(failed)
            .bind::<BigInt, _>(parent)
            .execute(conn)?;
        if changed == 0 {
            continue;
        }
        let row: Vec<BatchRow> = diesel::sql_query(find_batch_sql(dialect))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(parent)
            .load(conn)?;
        rows.extend(row);
    }
    Ok(rows)
}

/// A batch's row. Binds: the parent's id. The newest column is named with its table, so that
/// a database migrated by an older release gets an error that names it (`NotMigrated`).
pub(crate) fn find_batch_sql(dialect: Dialect) -> String {
    format!(
        "SELECT operation_id, total, succeeded, failed, callbacks_json, \
         batchframework_batch.workflow FROM batchframework_batch WHERE operation_id = {}",
        dialect.placeholder(1)
    )
}

/// The first [`MAX_FAILED_IDS`] + 1 children of a parent that finished `failed`, by id: one
/// range of the failed children's index (on MySQL/MariaDB, of the parent index). Binds: the
/// parent's id.
///
/// On MySQL/MariaDB a locking read: a plain read in a `REPEATABLE READ` transaction sees the
/// snapshot of the transaction's first read, which can predate children finished by a group
/// commit that the counts (updated by a locking write) already include.
pub(crate) fn failed_children_sql(dialect: Dialect) -> String {
    let lock = match dialect {
        Dialect::Mysql => " LOCK IN SHARE MODE",
        Dialect::Postgres | Dialect::Sqlite => "",
    };
    format!(
        "SELECT id FROM batchframework_batchoperation \
         WHERE parent_id = {} AND parent_id IS NOT NULL AND result = 'failed' ORDER BY id \
         LIMIT {}{lock}",
        dialect.placeholder(1),
        MAX_FAILED_IDS + 1
    )
}

/// The most failed children's ids a batch's summary lists.
pub(crate) const MAX_FAILED_IDS: usize = 10_000;

/// Finishes a parent's pending children as failed, never started. Binds: the time (start and
/// finish: the table requires a start time for every finished operation), the time again, the
/// output, the parent's id.
pub(crate) fn cancel_pending_children_sql(dialect: Dialect) -> String {
    let p = |n| dialect.placeholder(n);
    format!(
        "UPDATE batchframework_batchoperation SET status = 'finished', result = 'failed', \
         started_running_datetime = {}, finished_datetime = {}, output_data_json = {} \
         WHERE parent_id = {} AND parent_id IS NOT NULL AND status <> 'finished' \
         AND status = 'unprocessed'",
        p(1),
        p(2),
        p(3),
        p(4)
    )
}

/// Asks a parent's running children to stop, except those that are batches themselves (no
/// action runs them; they are cancelled as batches). Binds: the parent's id.
pub(crate) fn request_cancel_children_sql(dialect: Dialect) -> String {
    format!(
        "UPDATE batchframework_batchoperation SET cancel_requested = TRUE \
         WHERE parent_id = {} AND parent_id IS NOT NULL AND status <> 'finished' \
         AND status = 'running' AND cancel_requested = FALSE \
         AND NOT EXISTS (SELECT 1 FROM batchframework_batch AS b \
         WHERE b.operation_id = batchframework_batchoperation.id)",
        dialect.placeholder(1)
    )
}

/// The running children of a parent that are batches themselves. Binds: the parent's id.
pub(crate) fn running_sub_batches_sql(dialect: Dialect) -> String {
    format!(
        "SELECT op.id AS id FROM batchframework_batchoperation op \
         JOIN batchframework_batch b ON b.operation_id = op.id \
         WHERE op.parent_id = {} AND op.parent_id IS NOT NULL AND op.status <> 'finished' \
         AND op.status = 'running' ORDER BY op.id",
        dialect.placeholder(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_each_dialects_placeholders() {
        assert_eq!(
            add_to_batch_sql(Dialect::Postgres),
            "UPDATE batchframework_batch SET succeeded = succeeded + $1, failed = failed + $2 \
             WHERE operation_id = $3"
        );
        assert_eq!(
            add_to_batch_sql(Dialect::Mysql),
            "UPDATE batchframework_batch SET succeeded = succeeded + ?, failed = failed + ? \
             WHERE operation_id = ?"
        );
        assert!(cancel_pending_children_sql(Dialect::Sqlite).contains("parent_id = ?"));
        assert!(cancel_pending_children_sql(Dialect::Postgres).contains("parent_id = $4"));
        assert!(insert_batch_sql(Dialect::Postgres).ends_with("VALUES ($1, $2, 0, 0, $3, $4)"));
        assert!(insert_batch_sql(Dialect::Mysql).contains(", batchframework_batch.workflow)"));
    }
}
