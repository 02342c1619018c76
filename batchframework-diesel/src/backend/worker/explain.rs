//! The database's plan for each statement that must stay cheap at scale, for the tests that fail
//! when a plan regresses (`tests/plans.rs`, through `__private::query_plans`). Not an API.

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::dsl::Limit;
use diesel::query_builder::{AstPass, BoxedSqlQuery, Query, QueryFragment, QueryId, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Text, Untyped};
use diesel::{QueryDsl, QueryResult, RunQueryDsl};

use super::finish_query;
use super::sql::{due_sql, lost_sql, FinishedRow};
use super::WorkerBackend;
use crate::backend::batches::{cancel_pending_children_sql, failed_children_sql};
use crate::backend::conditions::{ActivePart, Matching, OrderedBy, Part};
use crate::backend::statements::LoadMatching;
use crate::backend::statements::{self as shared, ActivePartIds, CountMatching, LatestFailures};
use crate::backend::statements::{NextQueue, OldestDelayed, OldestImmediate, RecentFinishes};
use crate::backend::{UtcDateTime, UtcTimestamp};
use crate::filter::{OperationFilter, OperationOrder};
use crate::status::{OperationResult, Status};

/// `<prefix> <query>`: the backend's EXPLAIN of a statement, with the statement's own binds.
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Explain<Q> {
    prefix: &'static str,
    query: Q,
}

#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]
impl<Q> Explain<Q> {
    pub(crate) fn new(prefix: &'static str, query: Q) -> Self {
        Explain { prefix, query }
    }
}

impl<Q, DB> QueryFragment<DB> for Explain<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out)
    }
}

impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Explain<Q> {
    type SqlType = Untyped;
}

impl<Q, C> RunQueryDsl<C> for Explain<Q> {}

/// The plans, by name, of the statements whose cost must not grow with the table: the claim's
/// due read and the idle poll (for `operation_type` on `queue`), the lost-worker read, the
/// group commit, a batch's reads of its children, and the operators' questions.
pub fn query_plans<B>(
    conn: &mut B::Connection,
    queue: &str,
    operation_type: &str,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(&'static str, String)>>
where
    B: WorkerBackend,
    str: ToSql<Text, B>,
    i64: ToSql<diesel::sql_types::BigInt, B>,
    i32: ToSql<diesel::sql_types::Integer, B>,
    DateTime<Utc>: ToSql<UtcTimestamp, B>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: QueryFragment<B>,
    for<'a> NextQueue<'a>: QueryFragment<B>,
    for<'a> ActivePartIds<'a>: QueryFragment<B>,
    for<'a> RecentFinishes<'a>: QueryFragment<B>,
    for<'a> OldestImmediate<'a>: QueryFragment<B>,
    for<'a> OldestDelayed<'a>: QueryFragment<B>,
    for<'a> CountMatching<'a>: QueryFragment<B>,
    for<'a> Limit<LoadMatching<'a, B>>: QueryFragment<B>,
    LatestFailures<B>: QueryFragment<B>,
{
    let mut plans = Vec::new();
    for (name, limit, lock) in [("claim", 10, B::ROW_LOCKS), ("idle poll", 1, false)] {
        let sql = due_sql(B::DIALECT, 1, 1, limit, lock);
        let mut query = diesel::sql_query(sql).into_boxed::<B>();
        for delayed in [false, true] {
            query = query.bind::<Text, _>(operation_type).bind::<Text, _>(queue);
            if delayed {
                query = query.bind::<UtcTimestamp, _>(UtcDateTime(now));
            }
        }
        plans.push((name, B::explain(conn, &query)?));
    }
    let lost = diesel::sql_query(lost_sql(B::DIALECT, 1, 1, 10, B::ROW_LOCKS))
        .into_boxed::<B>()
        .bind::<UtcTimestamp, _>(UtcDateTime(now))
        .bind::<Text, _>(queue)
        .bind::<Text, _>(operation_type);
    plans.push(("lost", B::explain(conn, &lost)?));
    let finished = |id| FinishedRow {
        id,
        attempt: 1,
        result: OperationResult::Successful,
        finished_at: UtcDateTime(now),
        output_data_json: "{}",
    };
    let rows = [finished(1), finished(2)];
    // The statement the keeper runs: the backend's own where it has one.
    let finish = B::own_finish_query("a-worker", &rows)
        .unwrap_or_else(|| finish_query::<B>("a-worker", &rows));
    plans.push(("group commit", B::explain(conn, &finish)?));
    // A batch's failed children (its completion summary), and its unfinished ones (a cancel).
    let failed = diesel::sql_query(failed_children_sql(B::DIALECT))
        .into_boxed::<B>()
        .bind::<BigInt, _>(1_i64);
    plans.push(("failed children", B::explain(conn, &failed)?));
    let cancel = diesel::sql_query(cancel_pending_children_sql(B::DIALECT))
        .into_boxed::<B>()
        .bind::<UtcTimestamp, _>(UtcDateTime(now))
        .bind::<UtcTimestamp, _>(UtcDateTime(now))
        .bind::<Text, _>("{}")
        .bind::<BigInt, _>(1_i64);
    plans.push(("cancel children", B::explain(conn, &cancel)?));
    for (name, status) in [
        ("next pending queue", Status::Unprocessed),
        ("next running queue", Status::Running),
        ("next finished queue", Status::Finished),
    ] {
        // The step past `queue`: the one that must not read `queue`'s operations to find none.
        let next = shared::next_queue(status, Some(queue));
        plans.push((name, B::explain(conn, &next)?));
    }
    for (name, part) in [
        ("count immediate", Part::Immediate),
        ("count due delayed", Part::DueDelayed(now)),
        ("count not yet due", Part::NotYetDue(now)),
        ("count running", Part::Running),
    ] {
        let ids = shared::active_part_ids(ActivePart { queue, part }, 1_001);
        plans.push((name, B::explain(conn, &ids)?));
    }
    let immediate = shared::oldest_immediate(queue);
    plans.push(("oldest immediate", B::explain(conn, &immediate)?));
    let delayed = shared::oldest_delayed(queue, UtcDateTime(now));
    plans.push(("oldest delayed", B::explain(conn, &delayed)?));
    let day_ago = UtcDateTime(now - chrono::Duration::days(1));
    let successes = shared::recent_finishes(queue, OperationResult::Successful, day_ago, 1_001);
    plans.push(("recent successes", B::explain(conn, &successes)?));
    let failures = OperationFilter::new()
        .result(OperationResult::Failed)
        .finished_after(now - chrono::Duration::hours(1));
    let count = shared::count_matching(Matching::filter(&failures));
    plans.push(("failures in the last hour", B::explain(conn, &count)?));
    let latest = shared::latest_failures::<B>(10);
    plans.push(("latest failures", B::explain(conn, &latest)?));
    let newest = OperationFilter::new().operation_type(operation_type);
    let newest = shared::load_matching::<B>(Matching::filter(&newest), OrderedBy(newest.order));
    plans.push(("newest of a type", B::explain(conn, &newest.limit(50))?));
    let window = OperationFilter::new()
        .created_after(now - chrono::Duration::hours(1))
        .order_by(OperationOrder::CreatedDescending);
    let window = shared::load_matching::<B>(Matching::filter(&window), OrderedBy(window.order));
    plans.push((
        "created in the last hour",
        B::explain(conn, &window.limit(50))?,
    ));
    Ok(plans)
}
