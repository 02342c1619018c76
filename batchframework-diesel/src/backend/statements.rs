//! The statements that are the same on every backend, as query values and their types.
//!
//! Each constructor builds a statement without executing it; its type alias is what the
//! storage layer's `where` clauses name (`ChangeStatus<'a>: ExecuteDsl<C>`), so the statement is
//! written once and Diesel checks it for each concrete connection where the storage layer is
//! used. Statements that differ per backend are in `pg.rs`, `sqlite.rs` and `mysql.rs`.

use diesel::dsl::{
    insert_into, min, And, AsSelect, Asc, Count, Desc, Eq, EqAny, Filter, Find, Gt, IsNotNull,
    IsNull, Limit, LtEq, Order, Select, Update, Values,
};
use diesel::helper_types::min as Min;
use diesel::prelude::*;

use super::conditions::{ActivePart, Matching, OrderedBy, QueueAfter, StatusIs};
use super::rows::{Requeue, StatusChange};
use super::UtcDateTime;
use crate::operation::BatchOperation;
use crate::schema::batchframework_batchoperation::{self as operations, table};
use crate::schema::batchframework_queue as queues;
use crate::status::{OperationResult, Status};

/// The operation `id`, only while it is in `status`.
pub(crate) type WithStatus =
    Filter<Filter<table, Eq<operations::id, i64>>, Eq<operations::status, Status>>;

/// The operation `id`, only while it is in `status`: the guard of every lifecycle step.
pub(crate) fn with_status(id: i64, status: Status) -> WithStatus {
    table
        .filter(operations::id.eq(id))
        .filter(operations::status.eq(status))
}

/// `UPDATE ... SET <change> WHERE id = ? AND status = ?`.
pub(crate) type ChangeStatus<'a> = Update<WithStatus, &'a StatusChange<'a>>;

pub(crate) fn change_status<'a>(
    id: i64,
    from: Status,
    change: &'a StatusChange<'a>,
) -> ChangeStatus<'a> {
    diesel::update(with_status(id, from)).set(change)
}

/// A running operation's progress.
pub(crate) type UpdateProgress = Update<
    WithStatus,
    (
        Eq<operations::progress_done, i64>,
        Eq<operations::progress_total, Option<i64>>,
    ),
>;

pub(crate) fn update_progress(id: i64, done: i64, total: Option<i64>) -> UpdateProgress {
    diesel::update(with_status(id, Status::Running)).set((
        operations::progress_done.eq(done),
        operations::progress_total.eq(total),
    ))
}

/// A running operation's cancel request.
pub(crate) type RequestCancel = Update<WithStatus, Eq<operations::cancel_requested, bool>>;

pub(crate) fn request_cancel(id: i64) -> RequestCancel {
    diesel::update(with_status(id, Status::Running)).set(operations::cancel_requested.eq(true))
}

/// One column of the operation `id`.
pub(crate) type ColumnOf<Column> = Select<Find<table, i64>, Column>;

/// Whether the operation `id` was asked to cancel.
pub(crate) fn cancel_requested(id: i64) -> ColumnOf<operations::cancel_requested> {
    table.find(id).select(operations::cancel_requested)
}

/// When the operation `id` was created (a keyset's key).
pub(crate) fn created(id: i64) -> ColumnOf<operations::created_datetime> {
    table.find(id).select(operations::created_datetime)
}

/// The operation `id`, every column.
pub(crate) type FindOperation<DB> = Select<Find<table, i64>, AsSelect<BatchOperation, DB>>;

pub(crate) fn find_operation<DB>(id: i64) -> FindOperation<DB>
where
    DB: diesel::backend::Backend,
{
    table.find(id).select(BatchOperation::as_select())
}

/// The operations matching a filter, in its order.
pub(crate) type LoadMatching<'a, DB> =
    Order<Filter<Select<table, AsSelect<BatchOperation, DB>>, Matching<'a>>, OrderedBy>;

pub(crate) fn load_matching<DB>(matching: Matching<'_>, order: OrderedBy) -> LoadMatching<'_, DB>
where
    DB: diesel::backend::Backend,
{
    table
        .select(BatchOperation::as_select())
        .filter(matching)
        .order(order)
}

/// The newest failures by finish time: a backward read of the `failed` index (failures only,
/// by finish time), however many successes came since.
pub(crate) type LatestFailures<DB> = Limit<
    Order<
        Filter<
            Filter<
                Select<table, AsSelect<BatchOperation, DB>>,
                Eq<operations::result, OperationResult>,
            >,
            IsNotNull<operations::finished_datetime>,
        >,
        Desc<operations::finished_datetime>,
    >,
>;

pub(crate) fn latest_failures<DB>(limit: i64) -> LatestFailures<DB>
where
    DB: diesel::backend::Backend,
{
    table
        .select(BatchOperation::as_select())
        .filter(operations::result.eq(OperationResult::Failed))
        .filter(operations::finished_datetime.is_not_null())
        .order(operations::finished_datetime.desc())
        .limit(limit)
}

/// How many operations match a filter.
pub(crate) type CountMatching<'a> = Count<Filter<table, Matching<'a>>>;

pub(crate) fn count_matching(matching: Matching<'_>) -> CountMatching<'_> {
    table.filter(matching).count()
}

/// `DELETE` the operations matching a filter.
pub(crate) type DeleteMatching<'a> = diesel::dsl::delete<Filter<table, Matching<'a>>>;

pub(crate) fn delete_matching(matching: Matching<'_>) -> DeleteMatching<'_> {
    diesel::delete(table.filter(matching))
}

/// The ids a limited delete removes: the first `limit` that `matching` selects, in `order`.
/// The DELETE repeats the conditions, so a row changed meanwhile (a pending operation claimed by
/// a worker) is not deleted. Used by each backend's own limited delete.
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub(crate) type FirstIds<'a> =
    Limit<Order<Filter<Select<table, operations::id>, Matching<'a>>, OrderedBy>>;

#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub(crate) fn first_ids(matching: Matching<'_>, order: OrderedBy, limit: u32) -> FirstIds<'_> {
    table
        .select(operations::id)
        .filter(matching)
        .order(order)
        .limit(i64::from(limit))
}

/// The first queue, in name order, with an operation in `status`, after `after` if given: one
/// seek in the `active` index (unprocessed, running) or the `finished` one, whose entries start
/// with the queue (after the status on MySQL/MariaDB). Repeated, it lists the queues however
/// many operations each holds.
///
/// Written as `MIN(queue)` rather than `ORDER BY queue LIMIT 1`: MySQL/MariaDB answer a `MIN`
/// under an equality on the leading column with one index lookup, where for the `LIMIT` form
/// they may read the status's entries from the start, past every operation of the earlier
/// queues; PostgreSQL plans either form as the same one-row index scan.
pub(crate) type NextQueue<'a> =
    Select<Filter<Filter<table, StatusIs>, QueueAfter<'a>>, Min<operations::queue>>;

pub(crate) fn next_queue(status: Status, after: Option<&str>) -> NextQueue<'_> {
    table
        .filter(StatusIs(status))
        .filter(QueueAfter(after))
        .select(min(operations::queue))
}

/// The ids of one part of a queue's active operations, at most `limit`: one range of the
/// `active` index, read in its order.
pub(crate) type ActivePartIds<'a> = Limit<
    Order<
        Select<Filter<table, ActivePart<'a>>, operations::id>,
        (Asc<operations::run_after>, Asc<operations::id>),
    >,
>;

pub(crate) fn active_part_ids(part: ActivePart<'_>, limit: i64) -> ActivePartIds<'_> {
    table
        .filter(part)
        .select(operations::id)
        .order((operations::run_after.asc(), operations::id.asc()))
        .limit(limit)
}

/// The pending operations of a queue, from the `active` index (which holds, per queue and
/// status, `run_after` then id).
pub(crate) type PendingIn<'a> = Filter<Filter<table, Eq<operations::queue, &'a str>>, StatusIs>;

fn pending_in(queue: &str) -> PendingIn<'_> {
    table
        .filter(operations::queue.eq(queue))
        .filter(StatusIs(Status::Unprocessed))
}

/// When the oldest immediate operation of a queue was created. Ordered by `(run_after, id)`,
/// the `active` index's order (`run_after` is NULL throughout): ordered by id alone, the planner
/// may walk the primary key from the oldest operation and step over the whole finished history.
pub(crate) type OldestImmediate<'a> = Limit<
    Select<
        Order<
            Filter<PendingIn<'a>, IsNull<operations::run_after>>,
            (Asc<operations::run_after>, Asc<operations::id>),
        >,
        operations::created_datetime,
    >,
>;

pub(crate) fn oldest_immediate(queue: &str) -> OldestImmediate<'_> {
    pending_in(queue)
        .filter(operations::run_after.is_null())
        .order((operations::run_after.asc(), operations::id.asc()))
        .select(operations::created_datetime)
        .limit(1)
}

/// Since when the longest-due delayed operation of a queue has been due.
pub(crate) type OldestDelayed<'a> = Limit<
    Select<
        Order<
            Filter<
                Filter<PendingIn<'a>, IsNotNull<operations::run_after>>,
                LtEq<operations::run_after, UtcDateTime>,
            >,
            Asc<operations::run_after>,
        >,
        operations::run_after,
    >,
>;

pub(crate) fn oldest_delayed(queue: &str, now: UtcDateTime) -> OldestDelayed<'_> {
    pending_in(queue)
        .filter(operations::run_after.is_not_null())
        .filter(operations::run_after.le(now))
        .order(operations::run_after.asc())
        .select(operations::run_after)
        .limit(1)
}

/// The failed attempt of operation `id` that finished at `finished_at`, only while it is that
/// attempt: a retry computed from it never overwrites a later one.
pub(crate) type FailedAttempt = Filter<
    Filter<Filter<table, Eq<operations::id, i64>>, StatusIs>,
    And<Eq<operations::result, OperationResult>, Eq<operations::finished_datetime, UtcDateTime>>,
>;

/// `UPDATE ... SET <requeue> WHERE id = ? AND status = 'finished' AND result = 'failed' AND
/// finished_datetime = ?`.
pub(crate) type RequeueFailed<'a> = Update<FailedAttempt, &'a Requeue<'a>>;

pub(crate) fn requeue_failed<'a>(
    id: i64,
    finished_at: UtcDateTime,
    requeue: &'a Requeue<'a>,
) -> RequeueFailed<'a> {
    let attempt = table
        .filter(operations::id.eq(id))
        .filter(StatusIs(Status::Finished))
        .filter(
            operations::result
                .eq(OperationResult::Failed)
                .and(operations::finished_datetime.eq(finished_at)),
        );
    diesel::update(attempt).set(requeue)
}

/// `UPDATE batchframework_queue SET paused = ?, changed_datetime = ? WHERE queue = ?`.
pub(crate) type SetPaused<'a> = Update<
    Filter<queues::table, Eq<queues::queue, &'a str>>,
    (
        Eq<queues::paused, bool>,
        Eq<queues::changed_datetime, UtcDateTime>,
    ),
>;

pub(crate) fn set_paused(queue: &str, paused: bool, now: UtcDateTime) -> SetPaused<'_> {
    diesel::update(queues::table.filter(queues::queue.eq(queue)))
        .set((queues::paused.eq(paused), queues::changed_datetime.eq(now)))
}

/// `INSERT INTO batchframework_queue (queue, paused, changed_datetime) VALUES (?, ?, ?)`.
/// (The queue is owned: an insert borrowing it cannot be named for every lifetime.)
pub(crate) type InsertQueue = Values<
    insert_into<queues::table>,
    (
        Eq<queues::queue, String>,
        Eq<queues::paused, bool>,
        Eq<queues::changed_datetime, UtcDateTime>,
    ),
>;

pub(crate) fn insert_queue(queue: &str, paused: bool, now: UtcDateTime) -> InsertQueue {
    diesel::insert_into(queues::table).values((
        queues::queue.eq(queue.to_owned()),
        queues::paused.eq(paused),
        queues::changed_datetime.eq(now),
    ))
}

/// The paused queues, by name.
pub(crate) type PausedQueues = Order<
    Select<Filter<queues::table, Eq<queues::paused, bool>>, queues::queue>,
    Asc<queues::queue>,
>;

pub(crate) fn paused_queues() -> PausedQueues {
    queues::table
        .filter(queues::paused.eq(true))
        .select(queues::queue)
        .order(queues::queue.asc())
}

/// When the newest `limit` operations of `queue` that finished with `result` after `since`
/// finished, newest first: one range of the `finished` index.
pub(crate) type RecentFinishes<'a> = Limit<
    Select<
        Order<
            Filter<
                Filter<
                    Filter<Filter<table, StatusIs>, Eq<operations::queue, &'a str>>,
                    Eq<operations::result, OperationResult>,
                >,
                Gt<operations::finished_datetime, UtcDateTime>,
            >,
            Desc<operations::finished_datetime>,
        >,
        operations::finished_datetime,
    >,
>;

pub(crate) fn recent_finishes(
    queue: &str,
    result: OperationResult,
    since: UtcDateTime,
    limit: i64,
) -> RecentFinishes<'_> {
    table
        .filter(StatusIs(Status::Finished))
        .filter(operations::queue.eq(queue))
        .filter(operations::result.eq(result))
        .filter(operations::finished_datetime.gt(since))
        .order(operations::finished_datetime.desc())
        .select(operations::finished_datetime)
        .limit(limit)
}

/// Which of `names` have a settings row.
pub(crate) type KnownQueues =
    Select<Filter<queues::table, EqAny<queues::queue, Vec<String>>>, queues::queue>;

pub(crate) fn known_queues(names: Vec<String>) -> KnownQueues {
    queues::table
        .filter(queues::queue.eq_any(names))
        .select(queues::queue)
}
