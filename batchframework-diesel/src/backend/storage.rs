//! The SQL this crate issues against `batchframework_batchoperation`, written once.
//!
//! Diesel checks queries per backend, and spelling the trait bounds that would make these
//! functions generic over every backend costs more than it explains. Instead the bodies are
//! written once in [`impl_storage!`] and instantiated for each concrete connection type in
//! `backend/mod.rs`; the only per-backend choice passed in is how an INSERT reports its id.

use super::UtcDateTime;
use diesel::{AsChangeset, Insertable};

use crate::operation::{OperationResult, Status};
use crate::schema::batchframework_batchoperation;

/// The row written by `create_synchronous` / `create_asynchronous`.
#[doc(hidden)]
#[derive(Debug, Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct NewOperationRow<'a> {
    pub(crate) created_datetime: UtcDateTime,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) context_object_type: Option<&'a str>,
    pub(crate) context_object_id: Option<&'a str>,
    pub(crate) started_by: Option<&'a str>,
    pub(crate) operationtype: &'a str,
    pub(crate) status: Status,
    pub(crate) result: OperationResult,
    pub(crate) input_data_json: &'a str,
    pub(crate) output_data_json: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) priority: i32,
    pub(crate) run_after: Option<UtcDateTime>,
    pub(crate) max_attempts: i32,
}

/// The columns one lifecycle step sets; `None` fields are left as they are.
#[doc(hidden)]
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct StatusChange<'a> {
    pub(crate) status: Status,
    pub(crate) result: Option<OperationResult>,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) finished_datetime: Option<UtcDateTime>,
    pub(crate) output_data_json: Option<&'a str>,
}

/// What a worker writes on an operation it holds: a finish, or a release for retry.
#[doc(hidden)]
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation, treat_none_as_null = true)]
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

/// The PostgreSQL channel on which new due work is announced, with the queue's name as payload
/// (see the `batchframework_notify_work` trigger in the PostgreSQL migrations).
pub(crate) const WORK_CHANNEL: &str = "batchframework_work";

/// Implements [`Storage`](super::Storage) for one concrete connection type.
///
/// `notify`: the backend announces new work on [`WORK_CHANNEL`] (PostgreSQL); `none`: workers
/// only poll.
///
/// `returning`: the INSERT reports the new id with `RETURNING id` (PostgreSQL, SQLite).
/// `last_insert_id`: the INSERT is followed by `SELECT LAST_INSERT_ID()` (MySQL/MariaDB), which
/// is per connection and so safe under concurrency.
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(unused_macros)
)]
macro_rules! impl_storage {
    (@insert returning, $conn:ident, $row:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        ::diesel::insert_into(dsl::batchframework_batchoperation)
            .values($row)
            .returning(dsl::id)
            .get_result::<i64>($conn)
    }};
    (@insert last_insert_id, $conn:ident, $row:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        ::diesel::insert_into(dsl::batchframework_batchoperation)
            .values($row)
            .execute($conn)?;
        let id: u64 = ::diesel::select(::diesel::dsl::sql::<
            ::diesel::sql_types::Unsigned<::diesel::sql_types::BigInt>,
        >("LAST_INSERT_ID()"))
        .get_result($conn)?;
        i64::try_from(id).map_err(|e| ::diesel::result::Error::DeserializationError(e.into()))
    }};
    (@packet returning, $conn:ident) => {{
        let _ = $conn;
        Ok(None)
    }};
    (@packet last_insert_id, $conn:ident) => {{
        let bytes: u64 = ::diesel::select(::diesel::dsl::sql::<
            ::diesel::sql_types::Unsigned<::diesel::sql_types::BigInt>,
        >("@@max_allowed_packet"))
        .get_result($conn)?;
        Ok(Some(usize::try_from(bytes).unwrap_or(usize::MAX)))
    }};
    // MySQL's default REPEATABLE READ makes the claim's locking read take gap locks on the
    // claim index, and an application inserting new operations meanwhile deadlocks with it:
    // the claim runs in READ COMMITTED, which locks only the rows it takes.
    (@before_claim last_insert_id, $conn:ident) => {
        ::diesel::connection::SimpleConnection::batch_execute(
            $conn,
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )?
    };
    (@before_claim returning, $conn:ident) => {};
    // PostgreSQL: the migration's trigger notifies `WORK_CHANNEL` with the queue's name when
    // due work is inserted or released; a worker LISTENs on its keeper connection.
    (@listen notify, $conn:ident) => {{
        ::diesel::connection::SimpleConnection::batch_execute(
            $conn,
            &format!("LISTEN {}", $crate::backend::storage::WORK_CHANNEL),
        )?;
        Ok(true)
    }};
    (@listen none, $conn:ident) => {{
        let _ = $conn;
        Ok(false)
    }};
    (@unlisten notify, $conn:ident) => {
        ::diesel::connection::SimpleConnection::batch_execute($conn, "UNLISTEN *")
    };
    (@unlisten none, $conn:ident) => {{
        let _ = $conn;
        Ok(())
    }};
    (@notifications notify, $conn:ident) => {{
        let mut queues = Vec::new();
        for notification in $conn.notifications_iter() {
            let notification = notification?;
            if notification.channel == $crate::backend::storage::WORK_CHANNEL {
                queues.push(notification.payload);
            }
        }
        Ok(queues)
    }};
    (@notifications none, $conn:ident) => {{
        let _ = $conn;
        Ok(Vec::new())
    }};
    (@lock skip_locked, $query:expr) => {
        $query.for_update().skip_locked()
    };
    (@lock immediate, $query:expr) => {
        $query
    };
    (@claim_transaction skip_locked, $conn:ident, $body:expr) => {
        ::diesel::Connection::transaction($conn, $body)
    };
    // SQLite has no row locks: the claim takes the write lock up front instead.
    (@claim_transaction immediate, $conn:ident, $body:expr) => {
        $conn.immediate_transaction($body)
    };
    (@filter $query:ident, $filter:ident) => {{
        use $crate::schema::batchframework_batchoperation::dsl;
        let mut query = $query;
        if let Some(operation_type) = &$filter.operation_type {
            query = query.filter(dsl::operationtype.eq(operation_type));
        }
        if let Some((type_key, id)) = &$filter.context_object {
            query = query
                .filter(dsl::context_object_type.eq(type_key))
                .filter(dsl::context_object_id.eq(id));
        }
        if let Some(status) = $filter.status {
            query = query.filter(dsl::status.eq(status));
        }
        if let Some(created_before) = $filter.created_before {
            query = query.filter(dsl::created_datetime.lt($crate::UtcDateTime(created_before)));
        }
        query
    }};
    ($conn_type:ty, $dialect:ident, $insert:ident, $locking:ident, $notify:ident, $migrations:path) => {
        impl $crate::backend::Storage for $conn_type {
            fn claim_operations(
                &mut self,
                worker: &str,
                queues: &[String],
                now: ::chrono::DateTime<::chrono::Utc>,
                stale_before: ::chrono::DateTime<::chrono::Utc>,
                limit: i64,
            ) -> ::diesel::QueryResult<Vec<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                use $crate::{Status, UtcDateTime};
                let conn = self;
                $crate::backend::storage::impl_storage!(@before_claim $insert, conn);
                $crate::backend::storage::impl_storage!(@claim_transaction $locking, conn, |conn| {
                    let due = dsl::status
                        .eq(Status::Unprocessed)
                        .and(
                            dsl::run_after
                                .is_null()
                                .or(dsl::run_after.le(UtcDateTime(now))),
                        );
                    let lost = dsl::status
                        .eq(Status::Running)
                        .and(dsl::heartbeat_datetime.lt(UtcDateTime(stale_before)));
                    let candidates = dsl::batchframework_batchoperation
                        .filter(dsl::queue.eq_any(queues))
                        .filter(due.or(lost))
                        .order((dsl::priority.desc(), dsl::id.asc()))
                        .select(dsl::id)
                        .limit(limit);
                    let ids: Vec<i64> = $crate::backend::storage::impl_storage!(@lock $locking, candidates)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    ::diesel::update(dsl::batchframework_batchoperation.filter(dsl::id.eq_any(&ids)))
                        .set((
                            dsl::status.eq(Status::Running),
                            dsl::started_running_datetime.eq(UtcDateTime(now)),
                            dsl::locked_by.eq(worker),
                            dsl::heartbeat_datetime.eq(UtcDateTime(now)),
                            dsl::attempts.eq(dsl::attempts + 1),
                        ))
                        .execute(conn)?;
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq_any(&ids))
                        .order((dsl::priority.desc(), dsl::id.asc()))
                        .select($crate::BatchOperation::as_select())
                        .load(conn)
                })
            }

            fn change_claimed(
                &mut self,
                id: i64,
                worker: &str,
                change: &$crate::backend::storage::ClaimedChange<'_>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running))
                        .filter(dsl::locked_by.eq(worker)),
                )
                .set(change)
                .execute(self)
            }

            fn finish_claimed(
                &mut self,
                worker: &str,
                changes: &[(i64, $crate::backend::storage::ClaimedChange<'_>)],
            ) -> ::diesel::QueryResult<Vec<bool>> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@claim_transaction $locking, conn, |conn| {
                    changes
                        .iter()
                        .map(|(id, change)| {
                            $crate::backend::Storage::change_claimed(conn, *id, worker, change)
                                .map(|changed| changed == 1)
                        })
                        .collect()
                })
            }

            fn listen_for_work(&mut self) -> ::diesel::QueryResult<bool> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@listen $notify, conn)
            }

            fn stop_listening(&mut self) -> ::diesel::QueryResult<()> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@unlisten $notify, conn)
            }

            fn work_notifications(&mut self) -> ::diesel::QueryResult<Vec<String>> {
                let conn = self;
                $crate::backend::storage::impl_storage!(@notifications $notify, conn)
            }

            fn heartbeat(
                &mut self,
                worker: &str,
                ids: &[i64],
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq_any(ids))
                        .filter(dsl::status.eq($crate::Status::Running))
                        .filter(dsl::locked_by.eq(worker)),
                )
                .set(dsl::heartbeat_datetime.eq($crate::UtcDateTime(now)))
                .execute(self)
            }

            const DIALECT: $crate::Dialect = $crate::Dialect::$dialect;

            fn max_packet_bytes(&mut self) -> ::diesel::QueryResult<Option<usize>> {
                #[allow(unused_imports)]
                use ::diesel::prelude::*;
                let conn = self;
                $crate::backend::storage::impl_storage!(@packet $insert, conn)
            }

            fn run_embedded_migrations(
                &mut self,
            ) -> Result<Vec<String>, Box<dyn ::std::error::Error + Send + Sync>> {
                use ::diesel_migrations::MigrationHarness;
                let applied = self.run_pending_migrations($migrations)?;
                Ok(applied.iter().map(ToString::to_string).collect())
            }

            fn insert_operation(
                &mut self,
                row: &$crate::backend::storage::NewOperationRow<'_>,
            ) -> ::diesel::QueryResult<i64> {
                use ::diesel::prelude::*;
                let conn = self;
                $crate::backend::storage::impl_storage!(@insert $insert, conn, row)
            }

            fn change_status(
                &mut self,
                id: i64,
                from: $crate::Status,
                change: &$crate::backend::storage::StatusChange<'_>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq(from)),
                )
                .set(change)
                .execute(self)
            }

            fn update_progress(
                &mut self,
                id: i64,
                done: i64,
                total: Option<i64>,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running)),
                )
                .set((dsl::progress_done.eq(done), dsl::progress_total.eq(total)))
                .execute(self)
            }

            fn request_cancel(&mut self, id: i64) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                ::diesel::update(
                    dsl::batchframework_batchoperation
                        .filter(dsl::id.eq(id))
                        .filter(dsl::status.eq($crate::Status::Running)),
                )
                .set(dsl::cancel_requested.eq(true))
                .execute(self)
            }

            fn find_operation(
                &mut self,
                id: i64,
            ) -> ::diesel::QueryResult<Option<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                dsl::batchframework_batchoperation
                    .find(id)
                    .select($crate::BatchOperation::as_select())
                    .first(self)
                    .optional()
            }

            fn load_operations(
                &mut self,
                filter: &$crate::OperationFilter,
            ) -> ::diesel::QueryResult<Vec<$crate::BatchOperation>> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                let query = dsl::batchframework_batchoperation.into_boxed();
                let query = $crate::backend::storage::impl_storage!(@filter query, filter);
                query
                    .order(dsl::id.asc())
                    .select($crate::BatchOperation::as_select())
                    .load(self)
            }

            fn count_operations(
                &mut self,
                filter: &$crate::OperationFilter,
            ) -> ::diesel::QueryResult<i64> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                let query = dsl::batchframework_batchoperation.into_boxed();
                let query = $crate::backend::storage::impl_storage!(@filter query, filter);
                query.count().get_result(self)
            }

            fn delete_pending(
                &mut self,
                filter: &$crate::OperationFilter,
            ) -> ::diesel::QueryResult<usize> {
                use ::diesel::prelude::*;
                use $crate::schema::batchframework_batchoperation::dsl;
                let query = ::diesel::delete(dsl::batchframework_batchoperation).into_boxed();
                let query = $crate::backend::storage::impl_storage!(@filter query, filter);
                // Only pending work is removable: a running or finished operation has an owner
                // or a record to keep, whatever else the filter says.
                query
                    .filter(dsl::status.eq($crate::Status::Unprocessed))
                    .execute(self)
            }
        }
    };
}
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(unused_imports)
)]
pub(crate) use impl_storage;
