//! An [`OperationFilter`]'s conditions and order as SQL fragments of their own, so that the
//! statements using them are written once for every backend.
//!
//! A filter has any number of conditions; with Diesel's DSL that makes a boxed query, whose
//! type names the backend, and Diesel does not let code generic over the backend build one. As
//! a [`QueryFragment`] of its own, [`Matching`] is one expression type whatever the filter
//! holds, so a statement that filters with it has one type on every backend, and the storage
//! layer's `where` clauses can name it. Each value is a bind parameter, except a status or a
//! result, which is one of a few fixed words and is written as a literal so that the planner
//! can match it against a partial index's `WHERE` ([`StatusIs`]).

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::expression::ValidGrouping;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Text, Untyped};
use diesel::QueryResult;

use super::UtcTimestamp;
use crate::filter::{Keyset, OperationFilter, OperationOrder};
use crate::schema::batchframework_batchoperation::table;
use crate::status::Status;

/// The Diesel traits that make a [`QueryFragment`] of this module a boolean condition on the
/// operation table, usable in `filter`.
macro_rules! condition_expression {
    ($fragment:ty) => {
        impl Expression for $fragment {
            type SqlType = Bool;
        }

        impl AppearsOnTable<table> for $fragment {}

        impl SelectableExpression<table> for $fragment {}

        impl<GroupBy> ValidGrouping<GroupBy> for $fragment {
            type IsAggregate = is_aggregate::Never;
        }

        impl QueryId for $fragment {
            type QueryId = ();
            // The SQL depends on the value (which conditions, which literal status): never a
            // cached prepared statement.
            const HAS_STATIC_QUERY_ID: bool = false;
        }
    };
}

/// `WHERE` conditions: the filter's, those of a keyset page (the operations after it in the
/// filter's order) and, for statements that may only touch operations in one status, that
/// status. The filter's order and limit are not conditions: see [`OrderedBy`].
#[derive(Debug, Clone, Copy)]
pub struct Matching<'a> {
    filter: &'a OperationFilter,
    keyset: Option<Keyset>,
    status: Option<Status>,
    outside_batches: bool,
}

impl<'a> Matching<'a> {
    /// The operations matching `filter`.
    pub(crate) fn filter(filter: &'a OperationFilter) -> Self {
        Matching {
            filter,
            keyset: None,
            status: None,
            outside_batches: false,
        }
    }

    /// Only those after `keyset` in the filter's order.
    pub(crate) fn after(self, keyset: Option<Keyset>) -> Self {
        Matching { keyset, ..self }
    }

    /// Only those that are no batch's child, whatever else the filter says.
    pub(crate) fn outside_batches(self) -> Self {
        Matching {
            outside_batches: true,
            ..self
        }
    }

    /// Only those in `status`, whatever else the filter says.
    pub(crate) fn in_status(self, status: Status) -> Self {
        Matching {
            status: Some(status),
            ..self
        }
    }
}

/// Writes `AND`-joined conditions, starting with the first without one.
struct Conditions<'p, 'b, DB: Backend> {
    out: AstPass<'p, 'b, DB>,
    any: bool,
}

impl<'b, DB> Conditions<'_, 'b, DB>
where
    DB: Backend,
{
    fn next(&mut self) {
        self.out.push_sql(if self.any { " AND " } else { "" });
        self.any = true;
    }

    /// `column = 'word'`, for a status or a result: one of a fixed set of words, written as a
    /// literal (see [`StatusIs`]).
    fn is(&mut self, column: &str, word: &'static str) -> QueryResult<()> {
        self.next();
        self.out.push_identifier(column)?;
        self.out.push_sql(" = '");
        self.out.push_sql(word);
        self.out.push_sql("'");
        Ok(())
    }

    /// `column <op> value`, the value bound as SQL type `T`.
    fn compare<T, V>(&mut self, column: &str, op: &str, value: &'b V) -> QueryResult<()>
    where
        DB: HasSqlType<T>,
        V: ToSql<T, DB> + ?Sized,
    {
        self.next();
        self.out.push_identifier(column)?;
        self.out.push_sql(op);
        self.out.push_bind_param::<T, V>(value)
    }
}

impl<DB> QueryFragment<DB> for Matching<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<UtcTimestamp>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let filter = self.filter;
        let mut sql = Conditions { out, any: false };
        if let Some(operation_type) = &filter.operation_type {
            sql.compare::<Text, _>("operationtype", " = ", operation_type.as_str())?;
        }
        if let Some(context) = &filter.context_object {
            let (type_key, id) = context.parts();
            sql.compare::<Text, _>("context_object_type", " = ", type_key)?;
            sql.compare::<Text, _>("context_object_id", " = ", id)?;
        }
        for status in [&filter.status, &self.status].into_iter().flatten() {
            sql.is("status", status.as_str())?;
        }
        if let Some(result) = &filter.result {
            sql.is("result", result.as_str())?;
        }
        if let Some(queue) = &filter.queue {
            sql.compare::<Text, _>("queue", " = ", queue.as_str())?;
        }
        if let Some(started_by) = &filter.started_by {
            sql.compare::<Text, _>("started_by", " = ", started_by.as_str())?;
        }
        if let Some(parent) = &filter.parent {
            sql.compare::<BigInt, _>("parent_id", " = ", parent)?;
        }
        if self.outside_batches {
            sql.next();
            sql.out.push_identifier("parent_id")?;
            sql.out.push_sql(" IS NULL");
        }
        if let Some(created_before) = &filter.created_before {
            sql.compare::<UtcTimestamp, _>("created_datetime", " < ", created_before)?;
        }
        if let Some(created_after) = &filter.created_after {
            sql.compare::<UtcTimestamp, _>("created_datetime", " > ", created_after)?;
        }
        if let Some(finished_before) = &filter.finished_before {
            sql.compare::<UtcTimestamp, _>("finished_datetime", " < ", finished_before)?;
        }
        if let Some(finished_after) = &filter.finished_after {
            sql.compare::<UtcTimestamp, _>("finished_datetime", " > ", finished_after)?;
        }
        if let Some(keyset) = &self.keyset {
            keyset_condition(&mut sql, keyset, filter.order.is_descending())?;
        }
        if !sql.any {
            sql.out.push_sql("1 = 1");
        }
        Ok(())
    }
}

/// Keyset paging: the operations after `keyset` in the filter's order. By id the primary key is
/// sought; by creation time the key is `(created_datetime, id)`.
fn keyset_condition<'b, DB>(
    sql: &mut Conditions<'_, 'b, DB>,
    keyset: &'b Keyset,
    descending: bool,
) -> QueryResult<()>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<UtcTimestamp>,
    i64: ToSql<BigInt, DB>,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
{
    let op = if descending { " < " } else { " > " };
    let Some(created) = &keyset.created else {
        return sql.compare::<BigInt, _>("id", op, &keyset.id);
    };
    sql.next();
    sql.out.push_sql("(");
    let mut either = Conditions {
        out: sql.out.reborrow(),
        any: false,
    };
    either.compare::<UtcTimestamp, _>("created_datetime", op, created)?;
    either.out.push_sql(" OR (");
    let mut both = Conditions {
        out: either.out.reborrow(),
        any: false,
    };
    both.compare::<UtcTimestamp, _>("created_datetime", " = ", created)?;
    both.compare::<BigInt, _>("id", op, &keyset.id)?;
    sql.out.push_sql("))");
    Ok(())
}

condition_expression!(Matching<'_>);

/// `status = '<status>'`, the status written as a literal rather than bound.
///
/// The planner chooses an index when it prepares a statement: PostgreSQL (for a cached, generic
/// plan) and SQLite (always) can use a partial index such as `... WHERE status = 'running'` only
/// for a query whose own `WHERE` says the same thing in words, which a bound parameter does not.
/// The statuses are a fixed set of words, so nothing a caller passes becomes SQL.
#[derive(Debug, Clone, Copy)]
pub struct StatusIs(pub(crate) Status);

impl<DB: Backend> QueryFragment<DB> for StatusIs {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier("status")?;
        out.push_sql(" = '");
        out.push_sql(self.0.as_str());
        out.push_sql("'");
        Ok(())
    }
}

condition_expression!(StatusIs);

/// `queue > ?`, or no condition: a step of the walk through the names of the queues that have
/// active operations, one index seek each (see `statements::next_queue`).
#[derive(Debug, Clone, Copy)]
pub struct QueueAfter<'a>(pub(crate) Option<&'a str>);

impl<DB> QueryFragment<DB> for QueueAfter<'_>
where
    DB: Backend + HasSqlType<Text>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut sql = Conditions { out, any: false };
        match self.0 {
            Some(queue) => sql.compare::<Text, _>("queue", " > ", queue),
            None => {
                sql.out.push_sql("1 = 1");
                Ok(())
            }
        }
    }
}

condition_expression!(QueueAfter<'_>);

/// One part of one queue's active operations, for a count that stops at a limit. The `active`
/// index holds active operations under `(status, queue, run_after)`, so each part is one range
/// of it, whatever the rest of the table holds.
#[derive(Debug, Clone, Copy)]
pub struct ActivePart<'a> {
    pub(crate) queue: &'a str,
    pub(crate) part: Part,
}

/// The parts of a queue's active operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Pending, to run as soon as a worker is free (no `run_after`).
    Immediate,
    /// Pending, delayed until this instant or earlier: due now.
    DueDelayed(DateTime<Utc>),
    /// Pending, delayed until after this instant: not due yet.
    NotYetDue(DateTime<Utc>),
    /// Running.
    Running,
}

impl<DB> QueryFragment<DB> for ActivePart<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<UtcTimestamp>,
    str: ToSql<Text, DB>,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut sql = Conditions { out, any: false };
        let status = match self.part {
            Part::Running => Status::Running,
            _ => Status::Unprocessed,
        };
        sql.is("status", status.as_str())?;
        sql.compare::<Text, _>("queue", " = ", self.queue)?;
        match &self.part {
            Part::Immediate => {
                sql.next();
                sql.out.push_identifier("run_after")?;
                sql.out.push_sql(" IS NULL");
            }
            Part::DueDelayed(now) => {
                sql.compare::<UtcTimestamp, _>("run_after", " <= ", now)?;
            }
            Part::NotYetDue(now) => {
                sql.compare::<UtcTimestamp, _>("run_after", " > ", now)?;
            }
            Part::Running => {}
        }
        Ok(())
    }
}

condition_expression!(ActivePart<'_>);

/// `ORDER BY` the filter's order; ties in creation time are broken by id.
#[derive(Debug, Clone, Copy)]
pub struct OrderedBy(pub(crate) OperationOrder);

impl<DB: Backend> QueryFragment<DB> for OrderedBy {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let direction = if self.0.is_descending() {
            " DESC"
        } else {
            " ASC"
        };
        if self.0.by_creation_time() {
            out.push_identifier("created_datetime")?;
            out.push_sql(direction);
            out.push_sql(", ");
        }
        out.push_identifier("id")?;
        out.push_sql(direction);
        Ok(())
    }
}

impl Expression for OrderedBy {
    type SqlType = Untyped;
}

impl AppearsOnTable<table> for OrderedBy {}

impl<GroupBy> ValidGrouping<GroupBy> for OrderedBy {
    type IsAggregate = is_aggregate::Never;
}

impl QueryId for OrderedBy {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use chrono::TimeZone;
    use diesel::debug_query;
    use diesel::sqlite::Sqlite;

    use super::{ActivePart, Matching, OrderedBy, Part};
    use crate::backend::statements::next_queue;
    use crate::backend::statements::{active_part_ids, count_matching, load_matching};
    use crate::context::ContextRef;
    use crate::filter::{Keyset, OperationFilter, OperationOrder};
    use crate::status::{OperationResult, Status};

    fn sql_of(matching: Matching<'_>, order: OperationOrder) -> String {
        let query = load_matching::<Sqlite>(matching, OrderedBy(order));
        debug_query::<Sqlite, _>(&query).to_string()
    }

    /// The text between `WHERE` and the binds' listing.
    fn conditions(sql: &str) -> &str {
        let start = sql.find(" WHERE ").map_or(0, |i| i + 7);
        let end = sql[start..]
            .find(" ORDER BY")
            .map_or(sql.len(), |i| start + i);
        &sql[start..end]
    }

    #[test]
    fn an_empty_filter_matches_everything_newest_first() {
        let filter = OperationFilter::new();
        let sql = sql_of(Matching::filter(&filter), filter.order);
        assert_eq!(conditions(&sql), "1 = 1");
        assert!(sql.contains(" ORDER BY `id` DESC"), "{sql}");
    }

    #[test]
    fn every_condition_is_a_bind_joined_by_and() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let filter = OperationFilter::new()
            .operation_type("import")
            .context_object(&ContextRef::new("game", 7))
            .status(Status::Finished)
            .result(OperationResult::Failed)
            .queue("q")
            .started_by("ann")
            .created_before(at)
            .created_after(at);
        let matching = Matching::filter(&filter).in_status(Status::Finished);
        let sql = sql_of(matching, OperationOrder::CreatedAscending);
        assert_eq!(
            conditions(&sql),
            "`operationtype` = ? AND `context_object_type` = ? AND `context_object_id` = ? \
             AND `status` = 'finished' AND `status` = 'finished' AND `result` = 'failed' AND `queue` = ? \
             AND `started_by` = ? AND `created_datetime` < ? AND `created_datetime` > ?"
        );
        assert!(
            sql.contains("ORDER BY `created_datetime` ASC, `id` ASC"),
            "{sql}"
        );
        assert!(
            sql.contains(r#"binds: ["import", "game", "7", "q", "ann", "#),
            "{sql}"
        );
    }

    #[test]
    fn a_keyset_continues_after_its_key_in_the_filters_order() {
        let filter = OperationFilter::new().queue("q");
        let by_id = Matching::filter(&filter).after(Some(Keyset {
            id: 42,
            created: None,
        }));
        assert_eq!(
            conditions(&sql_of(by_id, OperationOrder::IdDescending)),
            "`queue` = ? AND `id` < ?"
        );
        let filter = filter.order_by(OperationOrder::CreatedAscending);
        let by_time = Matching::filter(&filter).after(Some(Keyset {
            id: 42,
            created: Some(chrono::Utc::now()),
        }));
        assert_eq!(
            conditions(&sql_of(by_time, OperationOrder::CreatedAscending)),
            "`queue` = ? AND (`created_datetime` > ? OR (`created_datetime` = ? AND `id` > ?))"
        );
    }

    #[test]
    fn a_count_uses_the_same_conditions() {
        let filter = OperationFilter::new().status(Status::Running);
        let sql = debug_query::<Sqlite, _>(&count_matching(Matching::filter(&filter))).to_string();
        assert!(
            sql.starts_with(
                "SELECT COUNT(*) FROM `batchframework_batchoperation` WHERE `status` = 'running'"
            ),
            "{sql}"
        );
    }

    /// Each part of a queue's active operations is one range of the `active` index (status,
    /// queue, run_after): the status literal, the queue bound, one condition on `run_after`.
    #[test]
    fn each_active_part_is_one_range_of_the_active_index() {
        let now = chrono::Utc::now();
        let sql = |part| {
            let query = active_part_ids(
                ActivePart {
                    queue: "mail",
                    part,
                },
                11,
            );
            conditions(&debug_query::<Sqlite, _>(&query).to_string()).to_owned()
        };
        let mail = "`status` = 'unprocessed' AND `queue` = ?";
        assert_eq!(
            sql(Part::Immediate),
            format!("{mail} AND `run_after` IS NULL")
        );
        assert_eq!(
            sql(Part::DueDelayed(now)),
            format!("{mail} AND `run_after` <= ?")
        );
        assert_eq!(
            sql(Part::NotYetDue(now)),
            format!("{mail} AND `run_after` > ?")
        );
        assert_eq!(sql(Part::Running), "`status` = 'running' AND `queue` = ?");
    }

    #[test]
    fn the_walk_through_the_queues_starts_at_the_first_and_steps_past_each() {
        let sql = |after| {
            let query = next_queue(Status::Running, after);
            debug_query::<Sqlite, _>(&query).to_string()
        };
        let first = sql(None);
        assert!(
            first.starts_with(
                "SELECT min(`batchframework_batchoperation`.`queue`) FROM \
                 `batchframework_batchoperation` WHERE (`status` = 'running' AND 1 = 1)"
            ),
            "{first}"
        );
        let next = sql(Some("mail"));
        assert!(
            next.contains("WHERE (`status` = 'running' AND `queue` > ?)"),
            "{next}"
        );
    }
}
