//! The rows and changesets the lifecycle writes, as Diesel `Insertable` / `AsChangeset` structs.

use diesel::{AsChangeset, Insertable};

use super::UtcDateTime;
use crate::schema::batchframework_batchoperation;
use crate::status::{OperationResult, Status};

/// The row written by `create_synchronous` / `create_asynchronous`.
///
/// A `None` is written as `NULL` (the default of each of those columns) rather than as
/// `DEFAULT`: Diesel does not cache the prepared statement of an insert that may say `DEFAULT`,
/// since its text depends on the values, so every enqueue would be parsed and planned anew.
#[derive(Debug, Insertable)]
#[diesel(table_name = batchframework_batchoperation)]
#[diesel(treat_none_as_default_value = false)]
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
    pub(crate) parent_id: Option<i64>,
}

/// The columns one lifecycle step sets; `None` fields are left as they are.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct StatusChange<'a> {
    pub(crate) status: Status,
    pub(crate) result: Option<OperationResult>,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) finished_datetime: Option<UtcDateTime>,
    pub(crate) output_data_json: Option<&'a str>,
}

/// An operation queued again after it failed: pending and due now, its attempts counted afresh,
/// nothing left of its run but the output (which keeps the earlier attempts).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = batchframework_batchoperation, treat_none_as_null = true)]
pub struct Requeue<'a> {
    pub(crate) status: Status,
    pub(crate) result: OperationResult,
    pub(crate) started_running_datetime: Option<UtcDateTime>,
    pub(crate) finished_datetime: Option<UtcDateTime>,
    pub(crate) run_after: Option<UtcDateTime>,
    pub(crate) attempts: i32,
    pub(crate) locked_by: Option<&'a str>,
    pub(crate) heartbeat_datetime: Option<UtcDateTime>,
    pub(crate) progress_done: Option<i64>,
    pub(crate) progress_total: Option<i64>,
    pub(crate) cancel_requested: bool,
    pub(crate) output_data_json: &'a str,
}

impl<'a> Requeue<'a> {
    /// Pending, due now, no attempt made yet, with `output_data_json`.
    pub(crate) fn with_output(output_data_json: &'a str) -> Self {
        Requeue {
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            started_running_datetime: None,
            finished_datetime: None,
            run_after: None,
            attempts: 0,
            locked_by: None,
            heartbeat_datetime: None,
            progress_done: None,
            progress_total: None,
            cancel_requested: false,
            output_data_json,
        }
    }
}
