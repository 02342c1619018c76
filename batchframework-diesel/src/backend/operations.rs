//! The statements about operations, for every connection: the lifecycle, searches, deletes.
//!
//! [`Storage`] is implemented once, for every Diesel connection whose backend is one of ours
//! ([`StorageBackend`]) and that can run the shared statements of `statements.rs`: the
//! connections themselves and r2d2's pooled connections alike, with no forwarding code.

use chrono::{DateTime, Utc};
use diesel::connection::LoadConnection;
use diesel::deserialize::FromSql;
use diesel::dsl::Limit;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel_migrations::MigrationHarness;

use super::batches::{self, BatchMemberId, BatchRow, ChildRow};
use super::conditions::{ActivePart, Matching, OrderedBy};
use super::minutes::{self, MinuteCount};
use super::retry::retry_outside_transaction;
use super::rows::{NewOperationRow, Requeue, StatusChange};
use super::statements::{self, ChangeStatus, ColumnOf, CountMatching, DeleteMatching};
use super::statements::{ActivePartIds, FindOperation, LatestFailures, LoadMatching, NextQueue};
use super::statements::{InsertQueue, OldestDelayed, PausedQueues, RecentFinishes};
use super::statements::{KnownQueues, RequeueFailed, SetPaused};
use super::statements::{OldestImmediate, RequestCancel, UpdateProgress};
use super::workflows::{self, DependencyRow, NamedStep, StepRow, StepState, IDS_PER_STATEMENT};
use super::{Deleted, Dialect, StorageBackend, UtcDateTime, UtcTimestamp};
use crate::filter::{Keyset, OperationFilter};
use crate::operation::BatchOperation;
use crate::schema::batchframework_batchoperation as operations;
use crate::status::{OperationResult, Status};

/// The statements about operations behind [`BatchConnection`](super::BatchConnection).
///
/// Public only because `BatchConnection` names it; in a private module, so it cannot be named
/// or implemented outside the crate. Its methods skip the checks and in-memory updates of
/// [`BatchOperation`]'s methods: the crate calls them, applications call those.
pub trait Storage {
    /// The SQL dialect of this connection's backend.
    const DIALECT: Dialect;
    /// The most bytes one statement's packet may have (MySQL's `max_allowed_packet`), where the
    /// backend limits it.
    fn max_packet_bytes(&mut self) -> QueryResult<Option<usize>>;
    /// The database server's clock, `None` for an in-process database (SQLite).
    fn database_now(&mut self) -> QueryResult<Option<DateTime<Utc>>>;
    /// Applies this backend's embedded migrations; returns the versions applied.
    fn run_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
    /// The versions of this backend's embedded migrations not applied yet.
    fn pending_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
    /// Inserts one operation row and returns its id.
    fn insert_operation(&mut self, row: &NewOperationRow<'_>) -> QueryResult<i64>;
    /// `UPDATE ... SET change WHERE id = ? AND status = from`; returns the rows changed (0 or 1).
    fn change_status(
        &mut self,
        id: i64,
        from: Status,
        change: &StatusChange<'_>,
    ) -> QueryResult<usize>;
    /// Sets a running operation's progress; returns the rows changed (0 or 1).
    fn update_progress(&mut self, id: i64, done: i64, total: Option<i64>) -> QueryResult<usize>;
    /// Flags a running operation for cancellation; returns the rows changed (0 or 1). Run again
    /// as InnoDB's deadlock victim outside a transaction.
    fn request_cancel(&mut self, id: i64) -> QueryResult<usize>;
    /// Whether the operation was asked to cancel (`None`: it no longer exists); reads one
    /// column, for actions that check it often.
    fn cancel_requested(&mut self, id: i64) -> QueryResult<Option<bool>>;
    /// The operation with this id, if it exists.
    fn find_operation(&mut self, id: i64) -> QueryResult<Option<BatchOperation>>;
    /// The operations matching the filter, in its order, after `keyset`, at most its limit.
    fn load_operations(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<Vec<BatchOperation>>;
    /// The creation time of the operation with this id, if it exists (a keyset's key).
    fn operation_created(&mut self, id: i64) -> QueryResult<Option<DateTime<Utc>>>;
    /// How many operations match the filter's conditions (its order, limit and keyset ignored).
    fn count_operations(&mut self, filter: &OperationFilter) -> QueryResult<i64>;
    /// Deletes the *unprocessed* operations matching the filter, after `keyset`, and with a
    /// limit at most that many, the first in the filter's order; returns how many. One
    /// statement, except on MySQL/MariaDB with a limit (see [`StorageBackend::delete_first`]).
    fn delete_pending(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<usize>;
    /// One prune batch: deletes the *finished* operations matching the filter, after `keyset`,
    /// at most its limit, the first in its order, as [`delete_pending`](Self::delete_pending)
    /// does; returns how many, and the highest id of the batch (where the next one starts).
    fn delete_finished(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<Deleted>;
    /// The planner's estimate of the table's rows, if it has one.
    fn estimated_rows(&mut self) -> QueryResult<Option<i64>>;
    /// The queues with an operation in `status`, in name order.
    fn queues_with(&mut self, status: Status) -> QueryResult<Vec<String>>;
    /// When the newest `limit` operations of `queue` that finished with `result` after `since`
    /// finished, newest first.
    fn recent_finishes(
        &mut self,
        queue: &str,
        result: OperationResult,
        since: DateTime<Utc>,
        limit: u64,
    ) -> QueryResult<Vec<DateTime<Utc>>>;
    /// The newest `limit` finishes of `queue` with `result` after `since`, counted per whole
    /// minute from `since` by the database.
    fn finishes_by_minute(
        &mut self,
        queue: &str,
        result: OperationResult,
        since: DateTime<Utc>,
        limit: u64,
    ) -> QueryResult<Vec<MinuteCount>>;
    /// The newest `limit` failures, by finish time.
    fn latest_failures(&mut self, limit: u32) -> QueryResult<Vec<BatchOperation>>;
    /// How many operations `part` holds, counted no further than `limit`.
    fn count_active_part(&mut self, part: ActivePart<'_>, limit: u64) -> QueryResult<u64>;
    /// Finishes pending operation `id` with `change` (a cancel), only while it is
    /// `unprocessed`; run again as InnoDB's deadlock victim outside a transaction. Returns the
    /// rows changed (0 or 1).
    fn cancel_pending(&mut self, id: i64, change: &StatusChange<'_>) -> QueryResult<usize>;
    /// Queues operation `id` again, pending and due now with `requeue`'s output, only while it
    /// is the failed attempt that finished at `finished_at`; returns the rows changed (0 or 1).
    fn requeue_failed(
        &mut self,
        id: i64,
        finished_at: DateTime<Utc>,
        requeue: &Requeue<'_>,
    ) -> QueryResult<usize>;
    /// Pauses or resumes `queue`, creating its settings row if it has none.
    fn set_queue_paused(
        &mut self,
        queue: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> QueryResult<()>;
    /// The paused queues, by name.
    fn paused_queues(&mut self) -> QueryResult<Vec<String>>;
    /// Creates the settings rows `queues` do not have yet (not paused), so that claims can lock
    /// them; a row a concurrent call created first is left as it is.
    fn add_queues(&mut self, queues: &[String], now: DateTime<Utc>) -> QueryResult<()>;
    /// Since when the longest-waiting due operation of `queue` has been due: the creation time
    /// of the oldest immediate one, or the `run_after` of the longest-due delayed one, whichever
    /// is earlier; `None` when nothing is due.
    fn oldest_due(&mut self, queue: &str, now: DateTime<Utc>)
        -> QueryResult<Option<DateTime<Utc>>>;
    /// Inserts a batch's children, in the caller's transaction: one `COPY` on PostgreSQL,
    /// multi-row `INSERT`s elsewhere; returns how many.
    fn insert_children(&mut self, rows: &mut dyn Iterator<Item = ChildRow>)
        -> crate::Result<usize>;
    /// Creates the counts row of the batch whose parent is `parent` (a workflow's, with
    /// `workflow`).
    fn insert_batch(
        &mut self,
        parent: i64,
        total: i64,
        callbacks_json: &str,
        workflow: bool,
    ) -> QueryResult<()>;
    /// See [`StorageBackend::add_to_batches`].
    fn add_to_batches(&mut self, counts: &[(i64, i64, i64)]) -> QueryResult<Vec<BatchRow>>;
    /// The counts row of the batch whose parent is `parent`, if it is one.
    fn find_batch(&mut self, parent: i64) -> QueryResult<Option<BatchRow>>;
    /// The children of `parent` that finished `failed`, by id: at most
    /// [`MAX_FAILED_IDS`](super::batches::MAX_FAILED_IDS) + 1.
    fn failed_children(&mut self, parent: i64) -> QueryResult<Vec<i64>>;
    /// Finishes the pending children of `parent` as failed with `output`, at `at`; returns how
    /// many.
    fn cancel_pending_children(
        &mut self,
        parent: i64,
        at: DateTime<Utc>,
        output: &str,
    ) -> QueryResult<usize>;
    /// Flags the running children of `parent` for cancellation; returns how many.
    fn request_cancel_children(&mut self, parent: i64) -> QueryResult<usize>;
    /// The running children of `parent` that are batches themselves, by id.
    fn running_sub_batches(&mut self, parent: i64) -> QueryResult<Vec<i64>>;
    /// The pending children of `parent`, by id (in the order they were inserted).
    fn pending_children(&mut self, parent: i64) -> QueryResult<Vec<i64>>;
    /// Inserts a workflow's steps, in the caller's transaction; returns how many.
    fn insert_steps(&mut self, rows: &mut dyn Iterator<Item = StepRow>) -> crate::Result<usize>;
    /// Inserts dependencies between steps, in the caller's transaction; returns how many.
    fn insert_dependencies(
        &mut self,
        rows: &mut dyn Iterator<Item = DependencyRow>,
    ) -> crate::Result<usize>;
    /// The dependencies on the steps `ids`: who waits for them, by dependent.
    fn dependents(&mut self, ids: &[i64]) -> QueryResult<Vec<DependencyRow>>;
    /// Counts `finished` more finished dependencies (`failed` of them failed) for each step of
    /// `ids`, locking their rows.
    fn count_dependencies(&mut self, ids: &[i64], finished: i32, failed: i32) -> QueryResult<()>;
    /// The rows of the steps `ids`, by id.
    fn steps(&mut self, ids: &[i64]) -> QueryResult<Vec<StepState>>;
    /// Makes the waiting steps `ids` due now; returns how many were still pending.
    fn release_steps(&mut self, ids: &[i64]) -> QueryResult<usize>;
    /// The steps step `id` depends on, with their names, by id.
    fn dependencies_of(&mut self, id: i64) -> QueryResult<Vec<NamedStep>>;
}

impl<C> Storage for C
where
    C: LoadConnection + MigrationHarness<C::Backend>,
    C::Backend: StorageBackend,
    for<'a> ChangeStatus<'a>: ExecuteDsl<C>,
    UpdateProgress: ExecuteDsl<C>,
    RequestCancel: ExecuteDsl<C>,
    for<'a> Limit<ColumnOf<operations::cancel_requested>>: LoadQuery<'a, C, bool>,
    for<'a> Limit<ColumnOf<operations::created_datetime>>: LoadQuery<'a, C, DateTime<Utc>>,
    for<'a> Limit<FindOperation<C::Backend>>: LoadQuery<'a, C, BatchOperation>,
    for<'a> LoadMatching<'a, C::Backend>: LoadQuery<'a, C, BatchOperation>,
    for<'a> Limit<LoadMatching<'a, C::Backend>>: LoadQuery<'a, C, BatchOperation>,
    for<'a> CountMatching<'a>: LoadQuery<'a, C, i64>,
    for<'a> DeleteMatching<'a>: ExecuteDsl<C>,
    for<'a> NextQueue<'a>: LoadQuery<'a, C, Option<String>>,
    for<'a> RecentFinishes<'a>: LoadQuery<'a, C, Option<DateTime<Utc>>>,
    for<'a> LatestFailures<C::Backend>: LoadQuery<'a, C, BatchOperation>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, MinuteCount>,
    str: ToSql<Text, C::Backend>,
    i64: ToSql<BigInt, C::Backend> + FromSql<BigInt, C::Backend>,
    i32: ToSql<Integer, C::Backend>,
    bool: ToSql<Bool, C::Backend>,
    C::Backend: diesel::sql_types::HasSqlType<Bool> + diesel::sql_types::HasSqlType<Integer>,
    DateTime<Utc>: ToSql<UtcTimestamp, C::Backend>,
    C::Backend: diesel::sql_types::HasSqlType<UtcTimestamp>,
    for<'a> RequeueFailed<'a>: ExecuteDsl<C>,
    for<'a> SetPaused<'a>: ExecuteDsl<C>,
    InsertQueue: ExecuteDsl<C>,
    for<'a> PausedQueues: LoadQuery<'a, C, String>,
    for<'a> KnownQueues: LoadQuery<'a, C, String>,
    for<'a> ActivePartIds<'a>: LoadQuery<'a, C, i64>,
    for<'a> OldestImmediate<'a>: LoadQuery<'a, C, DateTime<Utc>>,
    for<'a> OldestDelayed<'a>: LoadQuery<'a, C, Option<DateTime<Utc>>>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, BatchRow>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, BatchMemberId>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: ExecuteDsl<C>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, DependencyRow>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, StepState>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, NamedStep>,
    ChildRow: super::bulk_rows::BulkInsertRows<C>,
    StepRow: super::bulk_rows::BulkInsertRows<C>,
    DependencyRow: super::bulk_rows::BulkInsertRows<C>,
{
    const DIALECT: Dialect = <C::Backend as StorageBackend>::DIALECT;

    fn max_packet_bytes(&mut self) -> QueryResult<Option<usize>> {
        C::Backend::max_packet_bytes(self)
    }

    fn database_now(&mut self) -> QueryResult<Option<DateTime<Utc>>> {
        C::Backend::database_now(self)
    }

    fn run_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let applied = self.run_pending_migrations(C::Backend::MIGRATIONS)?;
        Ok(applied.iter().map(ToString::to_string).collect())
    }

    fn pending_embedded_migrations(
        &mut self,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let pending = self.pending_migrations(C::Backend::MIGRATIONS)?;
        Ok(pending
            .iter()
            .map(|m| m.name().version().to_string())
            .collect())
    }

    fn insert_operation(&mut self, row: &NewOperationRow<'_>) -> QueryResult<i64> {
        C::Backend::insert_operation(self, row)
    }

    fn change_status(
        &mut self,
        id: i64,
        from: Status,
        change: &StatusChange<'_>,
    ) -> QueryResult<usize> {
        statements::change_status(id, from, change).execute(self)
    }

    fn update_progress(&mut self, id: i64, done: i64, total: Option<i64>) -> QueryResult<usize> {
        statements::update_progress(id, done, total).execute(self)
    }

    fn request_cancel(&mut self, id: i64) -> QueryResult<usize> {
        // Racing the worker that finishes the same row, the UPDATE can be InnoDB's deadlock
        // victim.
        retry_outside_transaction(self, |conn| statements::request_cancel(id).execute(conn))
    }

    fn cancel_requested(&mut self, id: i64) -> QueryResult<Option<bool>> {
        statements::cancel_requested(id).first(self).optional()
    }

    fn find_operation(&mut self, id: i64) -> QueryResult<Option<BatchOperation>> {
        statements::find_operation(id).first(self).optional()
    }

    fn load_operations(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<Vec<BatchOperation>> {
        let matching = Matching::filter(filter).after(keyset);
        let query = statements::load_matching(matching, OrderedBy(filter.order));
        match filter.limit {
            Some(limit) => query.limit(i64::from(limit)).load(self),
            None => query.load(self),
        }
    }

    fn operation_created(&mut self, id: i64) -> QueryResult<Option<DateTime<Utc>>> {
        statements::created(id).first(self).optional()
    }

    fn count_operations(&mut self, filter: &OperationFilter) -> QueryResult<i64> {
        statements::count_matching(Matching::filter(filter)).get_result(self)
    }

    fn delete_pending(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<usize> {
        // Only pending work is removable: a running or finished operation has an owner or a
        // record to keep, whatever else the filter says. A batch's child is not: its batch
        // counts it (`batch::cancel_batch` cancels a batch's pending children).
        let matching = Matching::filter(filter)
            .after(keyset)
            .in_status(Status::Unprocessed)
            .outside_batches();
        Ok(delete(self, matching, filter)?.count)
    }

    fn delete_finished(
        &mut self,
        filter: &OperationFilter,
        keyset: Option<Keyset>,
    ) -> QueryResult<Deleted> {
        // Only finished operations are prunable: pending and running ones are work still to
        // do, whatever else the filter says.
        let matching = Matching::filter(filter)
            .after(keyset)
            .in_status(Status::Finished);
        delete(self, matching, filter)
    }

    fn estimated_rows(&mut self) -> QueryResult<Option<i64>> {
        C::Backend::estimated_rows(self)
    }

    fn queues_with(&mut self, status: Status) -> QueryResult<Vec<String>> {
        let mut queues: Vec<String> = Vec::new();
        while let Some(queue) =
            statements::next_queue(status, queues.last().map(String::as_str)).get_result(self)?
        {
            queues.push(queue);
        }
        Ok(queues)
    }

    fn cancel_pending(&mut self, id: i64, change: &StatusChange<'_>) -> QueryResult<usize> {
        // Racing a worker's claim of the same row, the UPDATE can be InnoDB's deadlock victim.
        retry_outside_transaction(self, |conn| {
            statements::change_status(id, Status::Unprocessed, change).execute(conn)
        })
    }

    fn requeue_failed(
        &mut self,
        id: i64,
        finished_at: DateTime<Utc>,
        requeue: &Requeue<'_>,
    ) -> QueryResult<usize> {
        // Racing a worker that claims the same row the moment it is pending again can make it
        // InnoDB's deadlock victim.
        retry_outside_transaction(self, |conn| {
            statements::requeue_failed(id, UtcDateTime(finished_at), requeue).execute(conn)
        })
    }

    fn set_queue_paused(
        &mut self,
        queue: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        let now = UtcDateTime(now);
        // The row exists once a worker served the queue or someone paused it. Otherwise it is
        // inserted; when a concurrent insert wins, that row is updated instead. Written with
        // plain statements, the same on every backend.
        if statements::set_paused(queue, paused, now).execute(self)? == 1 {
            return Ok(());
        }
        match statements::insert_queue(queue, paused, now).execute(self) {
            Ok(_) => Ok(()),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => statements::set_paused(queue, paused, now)
                .execute(self)
                .map(|_| ()),
            Err(error) => Err(error),
        }
    }

    fn paused_queues(&mut self) -> QueryResult<Vec<String>> {
        statements::paused_queues().load(self)
    }

    fn add_queues(&mut self, queues: &[String], now: DateTime<Utc>) -> QueryResult<()> {
        let known: Vec<String> = statements::known_queues(queues.to_vec()).load(self)?;
        for queue in queues.iter().filter(|queue| !known.contains(queue)) {
            match statements::insert_queue(queue, false, UtcDateTime(now)).execute(self) {
                Ok(_)
                | Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn recent_finishes(
        &mut self,
        queue: &str,
        result: OperationResult,
        since: DateTime<Utc>,
        limit: u64,
    ) -> QueryResult<Vec<DateTime<Utc>>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let times: Vec<Option<DateTime<Utc>>> =
            statements::recent_finishes(queue, result, UtcDateTime(since), limit).load(self)?;
        Ok(times.into_iter().flatten().collect())
    }

    fn finishes_by_minute(
        &mut self,
        queue: &str,
        result: OperationResult,
        since: DateTime<Utc>,
        limit: u64,
    ) -> QueryResult<Vec<MinuteCount>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        minutes::finishes_by_minute(self, Self::DIALECT, queue, result, since, limit)
    }

    fn latest_failures(&mut self, limit: u32) -> QueryResult<Vec<BatchOperation>> {
        statements::latest_failures(i64::from(limit)).load(self)
    }

    fn count_active_part(&mut self, part: ActivePart<'_>, limit: u64) -> QueryResult<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids: Vec<i64> = statements::active_part_ids(part, limit).load(self)?;
        Ok(ids.len() as u64)
    }

    fn oldest_due(
        &mut self,
        queue: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<DateTime<Utc>>> {
        let immediate: Option<DateTime<Utc>> = statements::oldest_immediate(queue)
            .get_result(self)
            .optional()?;
        let delayed: Option<DateTime<Utc>> = statements::oldest_delayed(queue, UtcDateTime(now))
            .get_result::<Option<DateTime<Utc>>>(self)
            .optional()?
            .flatten();
        Ok(immediate.into_iter().chain(delayed).min())
    }

    fn insert_children(
        &mut self,
        rows: &mut dyn Iterator<Item = ChildRow>,
    ) -> crate::Result<usize> {
        let max_packet = match Self::DIALECT.bulk_binds() {
            Some(_) => self.max_packet_bytes()?,
            None => None,
        };
        super::bulk_rows::insert_in_chunks(self, Self::DIALECT, max_packet, rows)
    }

    fn insert_batch(
        &mut self,
        parent: i64,
        total: i64,
        callbacks_json: &str,
        workflow: bool,
    ) -> QueryResult<()> {
        diesel::sql_query(batches::insert_batch_sql(Self::DIALECT))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(parent)
            .bind::<BigInt, _>(total)
            .bind::<Text, _>(callbacks_json)
            .bind::<Bool, _>(workflow)
            .execute(self)
            .map(|_| ())
    }

    fn add_to_batches(&mut self, counts: &[(i64, i64, i64)]) -> QueryResult<Vec<BatchRow>> {
        C::Backend::add_to_batches(self, counts)
    }

    fn find_batch(&mut self, parent: i64) -> QueryResult<Option<BatchRow>> {
        let rows: Vec<BatchRow> = diesel::sql_query(batches::find_batch_sql(Self::DIALECT))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(parent)
            .load(self)?;
        Ok(rows.into_iter().next())
    }

    fn failed_children(&mut self, parent: i64) -> QueryResult<Vec<i64>> {
        member_ids(self, batches::failed_children_sql(Self::DIALECT), parent)
    }

    fn cancel_pending_children(
        &mut self,
        parent: i64,
        at: DateTime<Utc>,
        output: &str,
    ) -> QueryResult<usize> {
        diesel::sql_query(batches::cancel_pending_children_sql(Self::DIALECT))
            .into_boxed::<C::Backend>()
            .bind::<UtcTimestamp, _>(at)
            .bind::<UtcTimestamp, _>(at)
            .bind::<Text, _>(output)
            .bind::<BigInt, _>(parent)
            .execute(self)
    }

    fn request_cancel_children(&mut self, parent: i64) -> QueryResult<usize> {
        diesel::sql_query(batches::request_cancel_children_sql(Self::DIALECT))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(parent)
            .execute(self)
    }

    fn running_sub_batches(&mut self, parent: i64) -> QueryResult<Vec<i64>> {
        member_ids(
            self,
            batches::running_sub_batches_sql(Self::DIALECT),
            parent,
        )
    }

    fn pending_children(&mut self, parent: i64) -> QueryResult<Vec<i64>> {
        member_ids(self, workflows::pending_children_sql(Self::DIALECT), parent)
    }

    fn insert_steps(&mut self, rows: &mut dyn Iterator<Item = StepRow>) -> crate::Result<usize> {
        let max_packet = self.max_packet_bytes()?;
        super::bulk_rows::insert_in_chunks(self, Self::DIALECT, max_packet, rows)
    }

    fn insert_dependencies(
        &mut self,
        rows: &mut dyn Iterator<Item = DependencyRow>,
    ) -> crate::Result<usize> {
        let max_packet = self.max_packet_bytes()?;
        super::bulk_rows::insert_in_chunks(self, Self::DIALECT, max_packet, rows)
    }

    fn dependents(&mut self, ids: &[i64]) -> QueryResult<Vec<DependencyRow>> {
        load_for_ids(self, ids, workflows::dependents_sql)
    }

    fn count_dependencies(&mut self, ids: &[i64], finished: i32, failed: i32) -> QueryResult<()> {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = workflows::count_dependencies_sql(Self::DIALECT, chunk.len());
            let query = diesel::sql_query(sql)
                .into_boxed::<C::Backend>()
                .bind::<Integer, _>(finished)
                .bind::<Integer, _>(failed);
            bind_ids(query, chunk).execute(self)?;
        }
        Ok(())
    }

    fn steps(&mut self, ids: &[i64]) -> QueryResult<Vec<StepState>> {
        load_for_ids(self, ids, workflows::steps_sql)
    }

    fn release_steps(&mut self, ids: &[i64]) -> QueryResult<usize> {
        let mut released = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = workflows::release_steps_sql(Self::DIALECT, chunk.len());
            released += bind_ids(diesel::sql_query(sql).into_boxed(), chunk).execute(self)?;
        }
        Ok(released)
    }

    fn dependencies_of(&mut self, id: i64) -> QueryResult<Vec<NamedStep>> {
        diesel::sql_query(workflows::dependencies_of_sql(Self::DIALECT))
            .into_boxed::<C::Backend>()
            .bind::<BigInt, _>(id)
            .load(self)
    }
}

/// The rows the statement `sql(dialect, n)` reads for `ids`, [`IDS_PER_STATEMENT`] at a time
/// (its binds: `n` ids).
fn load_for_ids<C, R>(
    conn: &mut C,
    ids: &[i64],
    sql: fn(Dialect, usize) -> String,
) -> QueryResult<Vec<R>>
where
    C: LoadConnection,
    C::Backend: StorageBackend,
    i64: ToSql<BigInt, C::Backend>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, R>,
{
    let mut rows = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let query = diesel::sql_query(sql(C::Backend::DIALECT, chunk.len())).into_boxed();
        let read: Vec<R> = bind_ids(query, chunk).load(conn)?;
        rows.extend(read);
    }
    Ok(rows)
}

/// `query` with `ids` bound, in order, as its next parameters.
fn bind_ids<'a, DB>(
    mut query: BoxedSqlQuery<'a, DB, SqlQuery>,
    ids: &[i64],
) -> BoxedSqlQuery<'a, DB, SqlQuery>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    for &id in ids {
        query = query.bind::<BigInt, _>(id);
    }
    query
}

/// Deletes what `matching` selects; with the filter's limit, at most that many, the first in
/// its order, as the backend does that best.
fn delete<C>(conn: &mut C, matching: Matching<'_>, filter: &OperationFilter) -> QueryResult<Deleted>
where
    C: LoadConnection,
    C::Backend: StorageBackend,
    for<'a> DeleteMatching<'a>: ExecuteDsl<C>,
{
    // A DELETE racing a worker's claim of the same rows can be InnoDB's deadlock victim.
    retry_outside_transaction(conn, |conn| match filter.limit {
        None => Ok(Deleted {
            count: statements::delete_matching(matching).execute(conn)?,
            highest_id: None,
        }),
        Some(limit) => C::Backend::delete_first(conn, matching, OrderedBy(filter.order), limit),
    })
}

/// The ids `sql` (one statement of `batches.rs` whose one bind is a parent's id) reads.
fn member_ids<C>(conn: &mut C, sql: String, parent: i64) -> QueryResult<Vec<i64>>
where
    C: LoadConnection,
    C::Backend: StorageBackend,
    i64: ToSql<BigInt, C::Backend>,
    for<'a> BoxedSqlQuery<'a, C::Backend, SqlQuery>: LoadQuery<'a, C, BatchMemberId>,
{
    let rows: Vec<BatchMemberId> = diesel::sql_query(sql)
        .into_boxed::<C::Backend>()
        .bind::<BigInt, _>(parent)
        .load(conn)?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}
