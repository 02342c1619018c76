//! The worker statements that are the same on every backend, as query values and their types
//! (as `backend/statements.rs` does for the operations' statements).

use diesel::dsl::{Add, AsSelect, Eq, EqAny, Filter, Select, Update};
use diesel::prelude::*;

use crate::backend::statements::WithStatus;
use crate::backend::UtcDateTime;
use crate::operation::BatchOperation;
use crate::schema::batchframework_batchoperation::{self as operations, table};
use crate::status::{OperationResult, Status};

/// What a worker writes on an operation it holds: a release for a retry, or an operation given
/// back unstarted (finishes go through [`finish_sql`](super::sql::finish_sql), grouped).
#[derive(Debug, diesel::AsChangeset)]
#[diesel(table_name = operations, treat_none_as_null = true)]
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

/// The claim itself: the operations `ids` set `running`, held by a worker, heartbeat now, one
/// more attempt. The ids were read, and locked where the backend locks rows, in the same
/// transaction.
pub(crate) type Claim<'a> = Update<
    Filter<table, EqAny<operations::id, &'a [i64]>>,
    (
        Eq<operations::status, Status>,
        Eq<operations::started_running_datetime, UtcDateTime>,
        Eq<operations::locked_by, &'a str>,
        Eq<operations::heartbeat_datetime, UtcDateTime>,
        Eq<operations::attempts, Add<operations::attempts, i32>>,
    ),
>;

pub(crate) fn claim<'a>(ids: &'a [i64], worker: &'a str, now: UtcDateTime) -> Claim<'a> {
    diesel::update(table.filter(operations::id.eq_any(ids))).set((
        operations::status.eq(Status::Running),
        operations::started_running_datetime.eq(now),
        operations::locked_by.eq(worker),
        operations::heartbeat_datetime.eq(now),
        operations::attempts.eq(operations::attempts + 1),
    ))
}

/// The operations `worker` claimed at `at` that are still running as that claim left them
/// (heartbeat `at`, which the keeper refreshes only for operations the worker knows it holds):
/// those of a claim whose commit the worker never heard back about.
pub(crate) type ClaimedAt<'a, DB> = Filter<
    Filter<
        Filter<Select<table, AsSelect<BatchOperation, DB>>, Eq<operations::status, Status>>,
        Eq<operations::locked_by, &'a str>,
    >,
    Eq<operations::heartbeat_datetime, UtcDateTime>,
>;

pub(crate) fn claimed_at<DB>(worker: &str, at: UtcDateTime) -> ClaimedAt<'_, DB>
where
    DB: diesel::backend::Backend,
{
    table
        .select(BatchOperation::as_select())
        .filter(operations::status.eq(Status::Running))
        .filter(operations::locked_by.eq(worker))
        .filter(operations::heartbeat_datetime.eq(at))
}

/// The operations `ids` that `worker` still holds. The ids are owned: a statement borrowing a
/// list cannot be named in the storage layer's `where` clauses (Rust cannot yet normalize
/// Diesel's `IN` types under a `for<'a>`).
pub(crate) type HeldAmong<'a> = Filter<
    Filter<Filter<table, EqAny<operations::id, Vec<i64>>>, Eq<operations::status, Status>>,
    Eq<operations::locked_by, &'a str>,
>;

/// A heartbeat for the operations `worker` holds among `ids`.
pub(crate) type Heartbeat<'a> =
    Update<HeldAmong<'a>, Eq<operations::heartbeat_datetime, UtcDateTime>>;

pub(crate) fn heartbeat<'a>(worker: &'a str, ids: &'a [i64], now: UtcDateTime) -> Heartbeat<'a> {
    diesel::update(
        table
            .filter(operations::id.eq_any(ids.to_vec()))
            .filter(operations::status.eq(Status::Running))
            .filter(operations::locked_by.eq(worker)),
    )
    .set(operations::heartbeat_datetime.eq(now))
}

/// `change` on the operation `id`, only if still running, held by `worker` and at `attempt`.
pub(crate) type ChangeClaimed<'a> = Update<
    Filter<Filter<WithStatus, Eq<operations::locked_by, &'a str>>, Eq<operations::attempts, i32>>,
    &'a ClaimedChange<'a>,
>;

pub(crate) fn change_claimed<'a>(
    id: i64,
    attempt: i32,
    worker: &'a str,
    change: &'a ClaimedChange<'a>,
) -> ChangeClaimed<'a> {
    diesel::update(
        crate::backend::statements::with_status(id, Status::Running)
            .filter(operations::locked_by.eq(worker))
            .filter(operations::attempts.eq(attempt)),
    )
    .set(change)
}

/// The operations among `ids` still pending: the delayed candidates a claim takes, which the
/// backends with row locks lock `FOR UPDATE SKIP LOCKED` (`WorkerBackend::lock_pending`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) type PendingAmong<'a> = diesel::dsl::Select<
    Filter<Filter<table, EqAny<operations::id, &'a [i64]>>, crate::backend::conditions::StatusIs>,
    operations::id,
>;

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn pending_among(ids: &[i64]) -> PendingAmong<'_> {
    table
        .filter(operations::id.eq_any(ids))
        .filter(crate::backend::conditions::StatusIs(Status::Unprocessed))
        .select(operations::id)
}
