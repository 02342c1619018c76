//! The statements about workflows (see [`crate::workflow`]): a workflow's steps and the
//! dependencies between them.
//!
//! Written as SQL text with the dialect's placeholders, as `batches.rs` is: several name a
//! list of ids whose length is known only at run time. Their texts are unit-tested below.

use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel::{Insertable, QueryableByName};

use super::Dialect;
use crate::schema::{batchframework_dependency, batchframework_step};

pub(crate) use super::timestamp::waiting_run_after;

/// Ids one statement names at most (each a bind): under every backend's bind limit.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// A step as its workflow's enqueue writes it. Public only because
/// [`Storage`](super::Storage) names it.
#[crate::bulk_insertable]
#[derive(Debug, Insertable)]
#[diesel(table_name = batchframework_step)]
pub struct StepRow {
    pub(crate) operation_id: i64,
    pub(crate) name: String,
    pub(crate) waiting_for: i32,
    pub(crate) failed_dependencies: i32,
    pub(crate) run_if_dependencies_fail: bool,
}

/// One dependency: `operation_id` waits for `depends_on_id`. Public only because
/// [`Storage`](super::Storage) names it.
#[crate::bulk_insertable]
#[derive(Debug, Clone, Copy, Insertable, QueryableByName)]
#[diesel(table_name = batchframework_dependency)]
pub struct DependencyRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) depends_on_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) operation_id: i64,
}

/// What a step waits for, as its row holds it. Public only because
/// [`Storage`](super::Storage) names it.
#[derive(Debug, Clone, QueryableByName)]
pub struct StepState {
    #[diesel(sql_type = BigInt)]
    pub(crate) operation_id: i64,
    #[diesel(sql_type = Integer)]
    pub(crate) waiting_for: i32,
    #[diesel(sql_type = Integer)]
    pub(crate) failed_dependencies: i32,
    #[diesel(sql_type = Bool)]
    pub(crate) run_if_dependencies_fail: bool,
}

/// A step's id and name. Public only because [`Storage`](super::Storage) names it.
#[derive(Debug, Clone, QueryableByName)]
pub struct NamedStep {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) name: String,
}

/// `n` placeholders from number `first` on, comma-separated.
fn placeholders(dialect: Dialect, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| dialect.placeholder(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pending children of a parent, by id: a workflow's steps as its enqueue inserted them
/// (ids are handed out in insertion order). Reads the unfinished children's index (on
/// MySQL/MariaDB, the parent index). Binds: the parent's id.
pub(crate) fn pending_children_sql(dialect: Dialect) -> String {
    format!(
        "SELECT id FROM batchframework_batchoperation \
         WHERE parent_id = {} AND parent_id IS NOT NULL AND status <> 'finished' ORDER BY id",
        dialect.placeholder(1)
    )
}

/// The dependencies on `n` steps, by dependent: who waits for them. Reads the primary key.
/// Binds: the steps' ids.
pub(crate) fn dependents_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "SELECT depends_on_id, operation_id FROM batchframework_dependency \
         WHERE depends_on_id IN ({}) ORDER BY operation_id, depends_on_id",
        placeholders(dialect, 1, n)
    )
}

/// Counts finished dependencies of `n` steps: each waits for `finished` fewer, `failed` of
/// which failed. The rows stay locked until the transaction ends, so two transactions
/// finishing a step's last dependencies take turns, and the second sees the first's count.
/// Binds: finished, failed, the steps' ids.
pub(crate) fn count_dependencies_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "UPDATE batchframework_step SET waiting_for = waiting_for - {}, \
         failed_dependencies = failed_dependencies + {} WHERE operation_id IN ({})",
        dialect.placeholder(1),
        dialect.placeholder(2),
        placeholders(dialect, 3, n)
    )
}

/// The rows of `n` steps. Binds: their ids.
pub(crate) fn steps_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "SELECT operation_id, waiting_for, failed_dependencies, run_if_dependencies_fail \
         FROM batchframework_step WHERE operation_id IN ({}) ORDER BY operation_id",
        placeholders(dialect, 1, n)
    )
}

/// Releases `n` waiting steps: due now, if still pending. On PostgreSQL the change of
/// `run_after` wakes idle workers (the released-work trigger). Binds: their ids.
pub(crate) fn release_steps_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "UPDATE batchframework_batchoperation SET run_after = NULL \
         WHERE id IN ({}) AND status = 'unprocessed'",
        placeholders(dialect, 1, n)
    )
}

/// The steps a step depends on, with their names, by id. Reads the dependencies' index on
/// the dependent step. Binds: the step's id.
pub(crate) fn dependencies_of_sql(dialect: Dialect) -> String {
    format!(
        "SELECT step.operation_id AS id, step.name AS name FROM batchframework_dependency dep \
         JOIN batchframework_step step ON step.operation_id = dep.depends_on_id \
         WHERE dep.operation_id = {} ORDER BY step.operation_id",
        dialect.placeholder(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_each_dialects_placeholders() {
        assert_eq!(
            count_dependencies_sql(Dialect::Postgres, 2),
            "UPDATE batchframework_step SET waiting_for = waiting_for - $1, \
             failed_dependencies = failed_dependencies + $2 WHERE operation_id IN ($3, $4)"
        );
        assert!(dependents_sql(Dialect::Mysql, 3).contains("IN (?, ?, ?)"));
        assert!(release_steps_sql(Dialect::Sqlite, 1).contains("IN (?) AND"));
        assert!(steps_sql(Dialect::Postgres, 2).contains("IN ($1, $2)"));
        assert!(dependencies_of_sql(Dialect::Postgres).contains("dep.operation_id = $1"));
    }

    #[test]
    fn a_waiting_step_is_due_at_the_end_of_time() {
        assert_eq!(
            waiting_run_after().to_rfc3339(),
            "9999-12-31T00:00:00+00:00"
        );
    }
}
