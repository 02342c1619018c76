//! The statements only workers issue: claims, releases, group commits, heartbeats and
//! new-work notifications; compiled with the workers (feature `r2d2`).
//!
//! Workers run on a pool's connections, of a concrete type per backend, so
//! [`WorkerBackend`] names that type and its methods take it as it is (SQLite's immediate
//! transactions and PostgreSQL's notifications are methods of those types). [`WorkerStorage`]
//! is implemented once on top, for each backend's connection type.

pub(crate) mod explain;
pub(crate) mod sql;
pub(crate) mod statements;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::connection::LoadConnection;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;
use diesel::r2d2::R2D2Connection;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::socket::WaitSocket;
use super::{BatchConnection, StorageBackend, UtcDateTime, UtcTimestamp};
use crate::operation::BatchOperation;
use crate::status::Status;
use sql::{due_sql, finish_chunks, finish_sql, lost_sql, queue_settings_sql};
use sql::{DueId, FinishedRow, LostId, QueueSetting, ReturnedId};
use statements::{ChangeClaimed, Claim, ClaimedAt, ClaimedChange, Heartbeat};

/// A connection a [`Worker`](crate::worker::Worker) runs on: `PgConnection`, `SqliteConnection`
/// or `MysqlConnection` (each behind its feature), the connection type of the r2d2 pool the
/// worker is given. You never implement this.
pub trait WorkerConnection:
    BatchConnection + WorkerStorage + R2D2Connection + Send + 'static
{
}

impl<C> WorkerConnection for C where
    C: BatchConnection + WorkerStorage + R2D2Connection + Send + 'static
{
}

/// What differs between backends in the workers' statements.
pub trait WorkerBackend:
    StorageBackend
    + HasSqlType<Text>
    + HasSqlType<BigInt>
    + HasSqlType<Integer>
    + HasSqlType<UtcTimestamp>
{
    /// The backend's connection type, as the workers' pool hands it out.
    type Connection: LoadConnection<Backend = Self>;

    /// Whether a claim locks the rows it reads (`FOR UPDATE SKIP LOCKED`), so that concurrent
    /// claimers skip each other's; otherwise the claim holds the database's write lock.
    const ROW_LOCKS: bool;

    /// Whether an UPDATE can return the ids it wrote (`RETURNING`).
    const UPDATE_RETURNING: bool;

    /// The most operations one claim takes on this backend, whatever the worker's
    /// `batch_size`; `None` for no limit of the backend's own.
    const LARGEST_CLAIM: Option<i64> = None;

    /// Whether a thread sizes its claims by how long its last batch took per operation (see
    /// `worker/claim_size.rs`); otherwise every claim asks for the largest.
    const CLAIMS_SIZED_BY_RUN_TIME: bool = true;

    /// Runs `body` in the transaction a group commit (or any write of several statements)
    /// takes.
    fn write_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>;

    /// Runs `body` in the transaction a claim takes; by default a write transaction.
    fn claim_transaction<T, F>(conn: &mut Self::Connection, body: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self::Connection) -> QueryResult<T>,
    {
        Self::write_transaction(conn, body)
    }

    /// Locks the operations among `ids` that are still pending and not locked by another
    /// claim (`FOR UPDATE SKIP LOCKED`), and returns them; where the claim holds the database's
    /// write lock instead, all of them.
    fn lock_pending(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<Vec<i64>>;

    /// Runs `claim` and returns the operations as it left them.
    fn mark_claimed(
        conn: &mut Self::Connection,
        claim: Claim<'_>,
        ids: &[i64],
    ) -> QueryResult<Vec<BatchOperation>>;

    /// The backend's own statement finishing `rows` (one chunk) held by `worker`, returning the
    /// ids it wrote (`RETURNING id`); `None` where it has none, and the chunk goes through
    /// [`finish_sql`] and [`finished_ids`](Self::finished_ids). The plan tests explain the one
    /// that runs.
    fn own_finish_query<'a>(
        worker: &'a str,
        rows: &'a [FinishedRow<'a>],
    ) -> Option<BoxedSqlQuery<'a, Self, SqlQuery>> {
        let _ = (worker, rows);
        None
    }

    /// Runs a finishing UPDATE of [`finish_sql`] for `rows` held by `worker` and returns the
    /// ids it wrote.
    fn finished_ids(
        conn: &mut Self::Connection,
        finish: BoxedSqlQuery<'_, Self, SqlQuery>,
        worker: &str,
        rows: &[FinishedRow<'_>],
    ) -> QueryResult<HashSet<i64>>;

    /// Announces, at commit, that the operations `ids` finished (to
    /// [`BatchOperation::wait`](crate::BatchOperation::wait)), as the backend's own finishing
    /// statement does for the rows it writes; nothing where the backend has no notifications.
    fn notify_finished(conn: &mut Self::Connection, ids: &[i64]) -> QueryResult<()> {
        let _ = (conn, ids);
        Ok(())
    }

    /// Subscribes the connection to finish notifications (see
    /// [`notify_finished`](Self::notify_finished)); `false` where the backend has none.
    fn listen_for_finished(conn: &mut Self::Connection) -> QueryResult<bool> {
        let _ = conn;
        Ok(false)
    }

    /// What the finish notifications received since the last call announced; never blocks.
    fn finished_notifications(conn: &mut Self::Connection) -> QueryResult<Finishes> {
        let _ = conn;
        Ok(Finishes::default())
    }

    /// Subscribes the connection to new-work notifications; `false` where the backend has none
    /// (workers then only poll).
    fn listen_for_work(conn: &mut Self::Connection) -> QueryResult<bool> {
        let _ = conn;
        Ok(false)
    }

    /// Ends every subscription of the connection, before it goes back to a pool.
    fn stop_listening(conn: &mut Self::Connection) -> QueryResult<()> {
        let _ = conn;
        Ok(())
    }

    /// Takes, without waiting, the session lock that lets one keeper at a time prune history
    /// (one per database, or per schema on PostgreSQL); whether it got it. The default, for
    /// SQLite, always gets it: its writers are serialised, and two keepers pruning the same
    /// rows delete each row once.
    fn try_lock_pruning(conn: &mut Self::Connection) -> QueryResult<bool> {
        let _ = conn;
        Ok(true)
    }

    /// Releases the lock of [`try_lock_pruning`](Self::try_lock_pruning).
    fn unlock_pruning(conn: &mut Self::Connection) -> QueryResult<()> {
        let _ = conn;
        Ok(())
    }

    /// The database's plan for `query`, as text (for the plan tests; see `explain.rs`).
    fn explain(
        conn: &mut Self::Connection,
        query: &dyn diesel::query_builder::QueryFragment<Self>,
    ) -> QueryResult<String>;

    /// The queues named by the new-work notifications received since the last call; never
    /// blocks.
    fn work_notifications(conn: &mut Self::Connection) -> QueryResult<Vec<String>> {
        let _ = conn;
        Ok(Vec::new())
    }

    /// The socket of `conn`, a listening connection, for the keeper to sleep on until a
    /// notification arrives, found with the help of `notifier`, another connection (see
    /// `backend/socket.rs`); `None` where the backend has no notifications or the socket cannot
    /// be told apart (the keeper then looks for notifications every few milliseconds).
    fn wait_socket(
        conn: &mut Self::Connection,
        notifier: &mut Self::Connection,
    ) -> QueryResult<Option<WaitSocket>> {
        let _ = (conn, notifier);
        Ok(None)
    }
}

/// What finish notifications announced: the ids they named, and whether one named none (its
/// list did not fit), which means "look again".
#[derive(Debug, Default)]
pub struct Finishes {
    pub(crate) ids: Vec<i64>,
    pub(crate) unnamed: bool,
}

impl Finishes {
    /// Whether operation `id` may have finished.
    pub(crate) fn may_include(&self, id: i64) -> bool {
        self.unnamed || self.ids.contains(&id)
    }
}

/// The workers' statements. Public only because [`WorkerConnection`] names it; in a private
/// module, so it cannot be named or implemented outside the crate.
pub trait WorkerStorage {
    /// See [`WorkerBackend::LARGEST_CLAIM`].
    const LARGEST_CLAIM: Option<i64>;
    /// See [`WorkerBackend::CLAIMS_SIZED_BY_RUN_TIME`].
    const CLAIMS_SIZED_BY_RUN_TIME: bool;
    /// Claims up to `limit` operations for `worker` on `queues` whose type is one of
    /// `operation_types` (the worker's registry): with `stale_before`, running ones whose
    /// holder's heartbeat is older than it (a lost worker) first, then pending ones due by `now`, by
    /// priority then age. Each is set `running`, locked by `worker`, heartbeat `now`,
    /// `attempts + 1`, and returned by priority then id. Concurrent claimers never get the same
    /// operation.
    fn claim_operations(
        &mut self,
        worker: &str,
        queues: &[String],
        operation_types: &[String],
        now: DateTime<Utc>,
        stale_before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> QueryResult<Vec<BatchOperation>>;
    /// Whether [`claim_operations`](Self::claim_operations) would find work, read without
    /// locking. A claim can come back empty while work is due: on MySQL/MariaDB, SKIP LOCKED
    /// also skips rows another claim's scan holds for an instant, and two concurrent claims can
    /// skip the same due row that way.
    /// The operations `worker` claimed at `at` (the claim's `now`) that are still as that
    /// claim left them: after a claim whose outcome the worker never heard, the ones it must
    /// give back.
    fn claimed_at(&mut self, worker: &str, at: DateTime<Utc>) -> QueryResult<Vec<BatchOperation>>;
    fn has_claimable(
        &mut self,
        queues: &[String],
        operation_types: &[String],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> QueryResult<bool>;
    /// `change` on an operation only if it is still `running`, held by `worker` and at the
    /// `attempt` it was claimed at (fencing).
    fn change_claimed(
        &mut self,
        id: i64,
        attempt: i32,
        worker: &str,
        change: &ClaimedChange<'_>,
    ) -> QueryResult<usize>;
    /// Finishes held operations, each only if still `running`, held by `worker` and at the
    /// attempt it was claimed at (fencing), in one transaction and one statement per chunk of
    /// at most [`FINISH_CHUNK`](sql::FINISH_CHUNK) rows and about `max_statement_bytes`;
    /// whether each was written. `also` runs last in the transaction, told which rows were
    /// written, and returns the ids of other operations it finished; where the backend has
    /// notifications, every operation finished is announced at commit (the rows by the
    /// backend's own finishing statement, the others by
    /// [`WorkerBackend::notify_finished`]).
    fn finish_claimed<F>(
        &mut self,
        worker: &str,
        rows: &[FinishedRow<'_>],
        max_statement_bytes: Option<usize>,
        also: F,
    ) -> QueryResult<Vec<bool>>
    where
        F: FnOnce(&mut Self, &[bool]) -> QueryResult<Vec<i64>>;
    /// Refreshes the heartbeat of the operations `worker` holds among `ids`.
    fn heartbeat(&mut self, worker: &str, ids: &[i64], now: DateTime<Utc>) -> QueryResult<usize>;
    /// See [`WorkerBackend::listen_for_work`].
    fn listen_for_work(&mut self) -> QueryResult<bool>;
    /// See [`WorkerBackend::stop_listening`].
    fn stop_listening(&mut self) -> QueryResult<()>;
    /// See [`WorkerBackend::work_notifications`].
    fn work_notifications(&mut self) -> QueryResult<Vec<String>>;
    /// See [`WorkerBackend::listen_for_finished`].
    fn listen_for_finished(&mut self) -> QueryResult<bool>;
    /// See [`WorkerBackend::finished_notifications`].
    fn finished_notifications(&mut self) -> QueryResult<Finishes>;
    /// See [`WorkerBackend::wait_socket`].
    fn wait_socket(&mut self, notifier: &mut Self) -> QueryResult<Option<WaitSocket>>;
    /// See [`WorkerBackend::try_lock_pruning`].
    fn try_lock_pruning(&mut self) -> QueryResult<bool>;
    /// See [`WorkerBackend::unlock_pruning`].
    fn unlock_pruning(&mut self) -> QueryResult<()>;
}

impl<C, B> WorkerStorage for C
where
    C: LoadConnection<Backend = B>,
    B: WorkerBackend<Connection = C>,
    str: ToSql<Text, B>,
    i64: ToSql<BigInt, B>,
    i32: ToSql<Integer, B>,
    DateTime<Utc>: ToSql<UtcTimestamp, B>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, LostId>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, DueId>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, QueueSetting>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, ReturnedId>,
    for<'a> Heartbeat<'a>: ExecuteDsl<C>,
    for<'a> ChangeClaimed<'a>: ExecuteDsl<C>,
    for<'a> ClaimedAt<'a, B>: LoadQuery<'a, C, BatchOperation>,
{
    const LARGEST_CLAIM: Option<i64> = B::LARGEST_CLAIM;
    const CLAIMS_SIZED_BY_RUN_TIME: bool = B::CLAIMS_SIZED_BY_RUN_TIME;

    fn claimed_at(&mut self, worker: &str, at: DateTime<Utc>) -> QueryResult<Vec<BatchOperation>> {
        statements::claimed_at(worker, UtcDateTime(at)).load(self)
    }

    fn claim_operations(
        &mut self,
        worker: &str,
        queues: &[String],
        operation_types: &[String],
        now: DateTime<Utc>,
        stale_before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> QueryResult<Vec<BatchOperation>> {
        B::claim_transaction(self, |conn| {
            let queues = &open_queues(conn, queues, B::ROW_LOCKS)?;
            // A lost worker's operations first (the running index), they have waited longest;
            // then due work by priority then age, one index range per operation type.
            let mut ids = match stale_before {
                Some(stale_before) => lost_ids(
                    conn,
                    queues,
                    operation_types,
                    stale_before,
                    limit,
                    B::ROW_LOCKS,
                )?,
                None => Vec::new(),
            };
            let room = limit - i64::try_from(ids.len()).unwrap_or(limit);
            if room > 0 {
                let due = due_ids(conn, queues, operation_types, now, room, B::ROW_LOCKS)?;
                let (delayed, immediate): (Vec<DueId>, Vec<DueId>) =
                    due.into_iter().partition(|row| row.is_delayed != 0);
                ids.extend(immediate.into_iter().map(|row| row.id));
                // Delayed work was read unlocked (a window of candidates): the rows taken are
                // locked now; one a concurrent claim locked first is left to it.
                let delayed: Vec<i64> = delayed.into_iter().map(|row| row.id).collect();
                if !delayed.is_empty() {
                    ids.extend(B::lock_pending(conn, &delayed)?);
                }
            }
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let claim = statements::claim(&ids, worker, UtcDateTime(now));
            let mut claimed = B::mark_claimed(conn, claim, &ids)?;
            claimed.sort_by_key(|op| (std::cmp::Reverse(op.priority()), op.id()));
            Ok(claimed)
        })
    }

    fn has_claimable(
        &mut self,
        queues: &[String],
        operation_types: &[String],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> QueryResult<bool> {
        let queues = &open_queues(self, queues, false)?;
        if !lost_ids(self, queues, operation_types, stale_before, 1, false)?.is_empty() {
            return Ok(true);
        }
        Ok(!due_ids(self, queues, operation_types, now, 1, false)?.is_empty())
    }

    fn change_claimed(
        &mut self,
        id: i64,
        attempt: i32,
        worker: &str,
        change: &ClaimedChange<'_>,
    ) -> QueryResult<usize> {
        statements::change_claimed(id, attempt, worker, change).execute(self)
    }

    fn finish_claimed<F>(
        &mut self,
        worker: &str,
        rows: &[FinishedRow<'_>],
        max_statement_bytes: Option<usize>,
        also: F,
    ) -> QueryResult<Vec<bool>>
    where
        F: FnOnce(&mut Self, &[bool]) -> QueryResult<Vec<i64>>,
    {
        B::write_transaction(self, |conn| {
            let mut written = HashSet::new();
            for chunk in finish_chunks(rows, max_statement_bytes) {
                if let Some(finish) = B::own_finish_query(worker, chunk) {
                    let returned: Vec<ReturnedId> = finish.load(conn)?;
                    written.extend(returned.into_iter().map(|row| row.id));
                    continue;
                }
                let finish = finish_query::<B>(worker, chunk);
                written.extend(B::finished_ids(conn, finish, worker, chunk)?);
            }
            let written: Vec<bool> = rows.iter().map(|row| written.contains(&row.id)).collect();
            // The rows' own statement announced them where the backend announces finishes.
            let others = also(conn, &written)?;
            if !others.is_empty() {
                B::notify_finished(conn, &others)?;
            }
            Ok(written)
        })
    }

    fn heartbeat(&mut self, worker: &str, ids: &[i64], now: DateTime<Utc>) -> QueryResult<usize> {
        statements::heartbeat(worker, ids, UtcDateTime(now)).execute(self)
    }

    fn listen_for_work(&mut self) -> QueryResult<bool> {
        B::listen_for_work(self)
    }

    fn stop_listening(&mut self) -> QueryResult<()> {
        B::stop_listening(self)
    }

    fn work_notifications(&mut self) -> QueryResult<Vec<String>> {
        B::work_notifications(self)
    }

    fn listen_for_finished(&mut self) -> QueryResult<bool> {
        B::listen_for_finished(self)
    }

    fn finished_notifications(&mut self) -> QueryResult<Finishes> {
        B::finished_notifications(self)
    }

    fn wait_socket(&mut self, notifier: &mut Self) -> QueryResult<Option<WaitSocket>> {
        B::wait_socket(self, notifier)
    }

    fn try_lock_pruning(&mut self) -> QueryResult<bool> {
        B::try_lock_pruning(self)
    }

    fn unlock_pruning(&mut self) -> QueryResult<()> {
        B::unlock_pruning(self)
    }
}

/// `queues` without the paused ones, their settings rows locked in share mode with `lock`
/// (see [`queue_settings_sql`]). A queue without a row is open.
fn open_queues<C, B>(conn: &mut C, queues: &[String], lock: bool) -> QueryResult<Vec<String>>
where
    C: LoadConnection<Backend = B>,
    B: WorkerBackend,
    str: ToSql<Text, B>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, QueueSetting>,
{
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let mut query =
        diesel::sql_query(queue_settings_sql(B::DIALECT, queues.len(), lock)).into_boxed::<B>();
    for queue in queues {
        query = query.bind::<Text, _>(queue.as_str());
    }
    let settings: Vec<QueueSetting> = query.load(conn)?;
    Ok(queues
        .iter()
        .filter(|queue| {
            !settings
                .iter()
                .any(|setting| setting.paused && &setting.queue == *queue)
        })
        .cloned()
        .collect())
}

/// The ids of at most `limit` running operations of `queues` and `types` whose heartbeat is
/// older than `stale_before`, longest lost first, row-locked (skipping locked rows) with `lock`:
/// the statement of [`lost_sql`], with its binds.
fn lost_ids<C, B>(
    conn: &mut C,
    queues: &[String],
    types: &[String],
    stale_before: DateTime<Utc>,
    limit: i64,
    lock: bool,
) -> QueryResult<Vec<i64>>
where
    C: LoadConnection<Backend = B>,
    B: WorkerBackend,
    str: ToSql<Text, B>,
    DateTime<Utc>: ToSql<UtcTimestamp, B>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, LostId>,
{
    if queues.is_empty() || types.is_empty() {
        return Ok(Vec::new());
    }
    let sql = lost_sql(B::DIALECT, queues.len(), types.len(), limit, lock);
    let mut query = diesel::sql_query(sql)
        .into_boxed::<B>()
        .bind::<UtcTimestamp, _>(UtcDateTime(stale_before));
    for value in queues.iter().chain(types) {
        query = query.bind::<Text, _>(value.as_str());
    }
    let rows: Vec<LostId> = query.load(conn)?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// At most `limit` pending operations of `queues` and `types` due by `now`, by priority then
/// age, immediate ones row-locked (skipping locked rows) with `lock`: the statement of
/// [`due_sql`], with its binds.
fn due_ids<C, B>(
    conn: &mut C,
    queues: &[String],
    types: &[String],
    now: DateTime<Utc>,
    limit: i64,
    lock: bool,
) -> QueryResult<Vec<DueId>>
where
    C: LoadConnection<Backend = B>,
    B: WorkerBackend,
    str: ToSql<Text, B>,
    DateTime<Utc>: ToSql<UtcTimestamp, B>,
    for<'a> BoxedSqlQuery<'a, B, SqlQuery>: LoadQuery<'a, C, DueId>,
{
    if queues.is_empty() || types.is_empty() {
        return Ok(Vec::new());
    }
    let sql = due_sql(B::DIALECT, queues.len(), types.len(), limit, lock);
    let mut query = diesel::sql_query(sql).into_boxed::<B>();
    for operation_type in types {
        for delayed in [false, true] {
            query = query.bind::<Text, _>(operation_type.as_str());
            for queue in queues {
                query = query.bind::<Text, _>(queue.as_str());
            }
            if delayed {
                query = query.bind::<UtcTimestamp, _>(UtcDateTime(now));
            }
        }
    }
    query.load(conn)
}

/// The finishing UPDATE of [`finish_sql`] for `chunk`, with its binds in the statement's order.
pub(crate) fn finish_query<'a, B>(
    worker: &'a str,
    chunk: &'a [FinishedRow<'a>],
) -> BoxedSqlQuery<'a, B, SqlQuery>
where
    B: WorkerBackend,
    str: ToSql<Text, B>,
    i64: ToSql<BigInt, B>,
    i32: ToSql<Integer, B>,
    DateTime<Utc>: ToSql<UtcTimestamp, B>,
{
    let sql = finish_sql(B::DIALECT, chunk.len(), B::UPDATE_RETURNING);
    let mut query = diesel::sql_query(sql)
        .into_boxed::<B>()
        .bind::<Text, _>(Status::Finished);
    for row in chunk {
        query = query.bind::<BigInt, _>(row.id).bind::<Text, _>(row.result);
    }
    for row in chunk {
        query = query
            .bind::<BigInt, _>(row.id)
            .bind::<UtcTimestamp, _>(row.finished_at);
    }
    for row in chunk {
        query = query
            .bind::<BigInt, _>(row.id)
            .bind::<Text, _>(row.output_data_json);
    }
    for row in chunk {
        query = query.bind::<BigInt, _>(row.id);
    }
    query = query.bind::<Text, _>(worker);
    for row in chunk {
        query = query
            .bind::<BigInt, _>(row.id)
            .bind::<Integer, _>(row.attempt);
    }
    query
}
