//! The `BatchOperation` model: one row of `batchframework_batchoperation`, its status and result
//! enums, and typed access to its JSON input and output.

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::{Identifiable, Queryable, Selectable};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::batchframework_batchoperation;
use crate::status::{OperationResult, Status};

/// One batch or background operation.
///
/// Loaded with [`BatchOperation::find`] or an [`OperationFilter`](crate::OperationFilter), or
/// with Diesel directly (it is `Queryable` and `Selectable`). Fields are read through accessors
/// and changed only by the lifecycle methods ([`mark_as_running`](Self::mark_as_running),
/// [`finish`](Self::finish), ...), so the in-memory value always matches a state the database
/// accepted.
///
/// # Serde
///
/// It is `Serialize` and `Deserialize`, for handing operations to a web API, a cache or another
/// process. Field names are the column names, except `operation_type` (column `operationtype`),
/// and `input_data` / `output_data`, which carry the stored JSON as JSON values, not as strings
/// (`null` when there is none). Timestamps are RFC 3339 in UTC, `status` and `result` their
/// stored strings (`"finished"`, `"not-available"`). Serializing and deserializing gives back an
/// equal value (object keys keep their stored order), except that stored JSON `null` reads back
/// as no data. The JSON values need a self-describing format (JSON, MessagePack, YAML; not
/// bincode), and serde_json's `arbitrary_precision` feature, if your build enables it, is not
/// supported.
///
/// ```
/// # use batchframework_diesel::BatchOperation;
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let op = BatchOperation::create_asynchronous("send-email")
///     .input(&serde_json::json!({"to": "ann@example.com"}))
///     .insert(&mut conn)?;
/// let json = serde_json::to_value(&op)?;
/// assert_eq!(json["operation_type"], "send-email");
/// assert_eq!(json["status"], "unprocessed");
/// assert_eq!(json["input_data"]["to"], "ann@example.com");
/// assert_eq!(json["output_data"], serde_json::Value::Null);
/// assert_eq!(serde_json::from_value::<BatchOperation>(json)?, op);
/// # Ok(())
/// # }
/// ```
///
/// A deserialized value is a snapshot of whatever produced it, not read from the database: call
/// [`reload`](Self::reload) for the current state. The lifecycle methods check the status in the
/// database too, so a stale value cannot make an illegal step.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize, Deserialize,
)]
#[diesel(table_name = batchframework_batchoperation)]
pub struct BatchOperation {
    pub(crate) id: i64,
    pub(crate) created_datetime: DateTime<Utc>,
    pub(crate) started_running_datetime: Option<DateTime<Utc>>,
    pub(crate) finished_datetime: Option<DateTime<Utc>>,
    pub(crate) context_object_type: Option<String>,
    pub(crate) context_object_id: Option<String>,
    pub(crate) started_by: Option<String>,
    #[serde(rename = "operation_type")]
    pub(crate) operationtype: String,
    pub(crate) status: Status,
    pub(crate) result: OperationResult,
    #[serde(rename = "input_data", with = "crate::stored_json", default)]
    pub(crate) input_data_json: String,
    #[serde(rename = "output_data", with = "crate::stored_json", default)]
    pub(crate) output_data_json: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) run_after: Option<DateTime<Utc>>,
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i32,
    pub(crate) locked_by: Option<String>,
    pub(crate) heartbeat_datetime: Option<DateTime<Utc>>,
    pub(crate) progress_done: Option<i64>,
    pub(crate) progress_total: Option<i64>,
    pub(crate) cancel_requested: bool,
    #[serde(default)]
    pub(crate) parent_id: Option<i64>,
}

impl BatchOperation {
    /// The batch this operation is a child of, if any (see [`crate::batch`]).
    pub fn parent_id(&self) -> Option<i64> {
        self.parent_id
    }

    /// The primary key; rows tagged by this operation point at it.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// What kind of operation this is (`operationtype`).
    pub fn operation_type(&self) -> &str {
        &self.operationtype
    }

    /// Where the operation is in its lifecycle.
    pub fn status(&self) -> Status {
        self.status
    }

    /// How it ended; [`OperationResult::NotAvailable`] until it is finished.
    pub fn result(&self) -> OperationResult {
        self.result
    }

    /// When the operation was created (UTC).
    pub fn created_datetime(&self) -> DateTime<Utc> {
        self.created_datetime
    }

    /// When it started running, if it has.
    pub fn started_running_datetime(&self) -> Option<DateTime<Utc>> {
        self.started_running_datetime
    }

    /// When it finished, if it has.
    pub fn finished_datetime(&self) -> Option<DateTime<Utc>> {
        self.finished_datetime
    }

    /// The context object's type key, if the operation has a context object.
    pub fn context_object_type(&self) -> Option<&str> {
        self.context_object_type.as_deref()
    }

    /// The context object's primary key as text, if the operation has a context object.
    pub fn context_object_id(&self) -> Option<&str> {
        self.context_object_id.as_deref()
    }

    /// The key of the user who started the operation, if recorded.
    pub fn started_by(&self) -> Option<&str> {
        self.started_by.as_deref()
    }

    /// The raw JSON text of the input data; empty when there is none.
    pub fn input_data_json(&self) -> &str {
        &self.input_data_json
    }

    /// The raw JSON text of the output data; empty when there is none.
    pub fn output_data_json(&self) -> &str {
        &self.output_data_json
    }

    /// The worker queue it runs on (`default` unless its action group says otherwise).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Its priority within the queue; higher runs first.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The instant before which no worker starts it, if delayed.
    pub fn run_after(&self) -> Option<DateTime<Utc>> {
        self.run_after
    }

    /// Whether it is a workflow step waiting for its dependencies to finish (see
    /// [`workflow`](crate::workflow)): pending, with a `run_after` of 9999-12-31 until the
    /// transaction that finishes its last dependency releases it.
    pub fn is_waiting_for_dependencies(&self) -> bool {
        self.status == Status::Unprocessed
            && self.run_after == Some(crate::backend::timestamp::waiting_run_after())
    }

    /// How many times a worker has started it.
    pub fn attempts(&self) -> i32 {
        self.attempts
    }

    /// How many starts it may have before it is failed for good.
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// The worker holding it while it runs.
    pub fn locked_by(&self) -> Option<&str> {
        self.locked_by.as_deref()
    }

    /// The holding worker's last heartbeat.
    pub fn heartbeat_datetime(&self) -> Option<DateTime<Utc>> {
        self.heartbeat_datetime
    }

    /// Progress its action reported, as (done, total), if any.
    pub fn progress(&self) -> Option<(i64, Option<i64>)> {
        self.progress_done.map(|done| (done, self.progress_total))
    }

    /// Whether someone asked the running operation to stop.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// The input data as `T`: `Ok(None)` when none was given, an [`Error::InvalidJson`] when the
    /// stored text is not JSON of that shape.
    pub fn input_data<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_json(self.id, "input data", &self.input_data_json)
    }

    /// The output data as `T`: `Ok(None)` when none was stored, an [`Error::InvalidJson`] when
    /// the stored text is not JSON of that shape.
    pub fn output_data<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_json(self.id, "output data", &self.output_data_json)
    }
}

fn parse_json<T: DeserializeOwned>(id: i64, field: &'static str, text: &str) -> Result<Option<T>> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|source| Error::InvalidJson { id, field, source })
}

/// Like `ievv_batchframework`'s `__str__`: the type, the id, and where it is in its lifecycle, e.g.
/// `new-blogpost-email #42 (finished, successful)`.
impl fmt::Display for BatchOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.operationtype.is_empty() {
            "batch operation"
        } else {
            &self.operationtype
        };
        write!(f, "{name} #{} ({}", self.id, self.status)?;
        if self.status == Status::Finished {
            write!(f, ", {}", self.result)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
impl BatchOperation {
    /// A new, pending operation held only in memory, for unit tests of code that reads one.
    pub(crate) fn sample() -> BatchOperation {
        BatchOperation {
            id: 7,
            created_datetime: Utc::now(),
            started_running_datetime: None,
            finished_datetime: None,
            context_object_type: None,
            context_object_id: None,
            started_by: None,
            operationtype: "import-users".into(),
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            input_data_json: String::new(),
            output_data_json: String::new(),
            queue: "default".into(),
            priority: 0,
            run_after: None,
            attempts: 0,
            max_attempts: 1,
            locked_by: None,
            heartbeat_datetime: None,
            progress_done: None,
            progress_total: None,
            cancel_requested: false,
            parent_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation() -> BatchOperation {
        BatchOperation::sample()
    }

    #[test]
    fn empty_json_reads_as_none() {
        let op = operation();
        assert_eq!(op.input_data::<serde_json::Value>().ok(), Some(None));
        assert_eq!(op.output_data::<serde_json::Value>().ok(), Some(None));
    }

    #[test]
    fn invalid_json_is_a_typed_error() {
        let mut op = operation();
        op.input_data_json = "{not json".into();
        let error = op.input_data::<serde_json::Value>().err();
        assert!(
            matches!(
                error,
                Some(Error::InvalidJson {
                    id: 7,
                    field: "input data",
                    ..
                })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn json_of_another_shape_is_a_typed_error() {
        let mut op = operation();
        op.output_data_json = r#"{"a": 1}"#.into();
        let error = op.output_data::<Vec<u32>>().err();
        assert!(
            matches!(error, Some(Error::InvalidJson { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn display_names_type_id_and_state() {
        let mut op = operation();
        assert_eq!(op.to_string(), "import-users #7 (unprocessed)");
        op.status = Status::Finished;
        op.result = OperationResult::Failed;
        assert_eq!(op.to_string(), "import-users #7 (finished, failed)");
        op.operationtype.clear();
        assert_eq!(op.to_string(), "batch operation #7 (finished, failed)");
    }

    #[test]
    fn serde_writes_stored_strings_json_values_and_rfc_3339() {
        let mut op = operation();
        op.input_data_json = r#"{"zeta":1,"alpha":[true,null,1.5]}"#.into();
        op.status = Status::Finished;
        op.result = OperationResult::Failed;
        let text = serde_json::to_string(&op).ok();
        let text = text.as_deref().unwrap_or_default();
        assert!(
            text.contains(r#""operation_type":"import-users""#),
            "{text}"
        );
        assert!(
            text.contains(r#""status":"finished","result":"failed""#),
            "{text}"
        );
        assert!(
            text.contains(r#""input_data":{"zeta":1,"alpha":[true,null,1.5]}"#),
            "stored key order is kept: {text}"
        );
        assert!(text.contains(r#""output_data":null"#), "{text}");
        let created = op
            .created_datetime
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        assert!(
            text.contains(&format!(r#""created_datetime":"{created}""#)),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<BatchOperation>(text).ok(), Some(op));
    }

    #[test]
    fn serde_reads_missing_or_null_data_as_none_and_refuses_unknown_strings() {
        let op = operation();
        let Ok(mut json) = serde_json::to_value(&op) else {
            unreachable!("an operation serializes")
        };
        json.as_object_mut().map(|o| o.remove("input_data"));
        assert_eq!(
            serde_json::from_value::<BatchOperation>(json.clone()).ok(),
            Some(op)
        );
        json["status"] = "done".into();
        let error = serde_json::from_value::<BatchOperation>(json)
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .unwrap_or_default()
                .contains("unknown variant `done`"),
            "{error:?}"
        );
    }

    #[test]
    fn serializing_invalid_stored_json_is_an_error() {
        let mut op = operation();
        op.output_data_json = "{not json".into();
        let error = serde_json::to_string(&op).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .unwrap_or_default()
                .contains("not valid JSON"),
            "{error:?}"
        );
    }
}
