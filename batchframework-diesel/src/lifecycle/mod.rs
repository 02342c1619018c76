//! Creating operations and moving them through `unprocessed → running → finished`.
//!
//! Every step is one guarded `UPDATE ... WHERE id = ? AND status = <expected>`: when two
//! connections race, the database lets exactly one win, and the loser gets
//! [`Error::IllegalTransition`] with the status it found. The in-memory [`BatchOperation`] is
//! changed only after the database accepted the step.

mod details;

pub(crate) use details::OperationDetails;

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::backend::rows::{NewOperationRow, StatusChange};
use crate::backend::{now, BatchConnection, Storage, UtcDateTime};
use crate::completion::Tally;
use crate::context::{ContextObject, ContextRef};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

/// The longest operation type, context type key, context id and `started_by` accepted, in
/// characters (the columns are `VARCHAR(255)`).
pub const MAX_KEY_LENGTH: usize = 255;

/// The queue an operation runs on unless told otherwise, declared in every
/// [`Registry`](crate::registry::Registry).
pub const DEFAULT_QUEUE: &str = "default";

/// The queue for urgent work, declared in every [`Registry`](crate::registry::Registry) like
/// [`DEFAULT_QUEUE`], so that a worker can serve it apart from the rest
/// (`ActionGroup::queue(HIGH_PRIORITY_QUEUE)`).
pub const HIGH_PRIORITY_QUEUE: &str = "highpriority";

/// Builder for a new operation, from [`BatchOperation::create_synchronous`] or
/// [`BatchOperation::create_asynchronous`]; [`insert`](Self::insert) writes it.
#[derive(Debug)]
#[must_use = "nothing is stored until you call `.insert(&mut conn)`"]
pub struct NewOperation {
    starts_running: bool,
    operation_type: String,
    details: OperationDetails,
    queue: String,
    max_attempts: i32,
    parent_id: Option<i64>,
}

impl BatchOperation {
    /// An operation that runs now, in the caller: it is stored `running`, with a start time.
    ///
    /// ```
    /// # use batchframework_diesel::{BatchOperation, Status, OperationResult};
    /// # use diesel::{Connection, SqliteConnection};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut conn = SqliteConnection::establish(":memory:")?;
    /// # batchframework_diesel::run_migrations(&mut conn)?;
    /// let mut op = BatchOperation::create_synchronous("import-users")
    ///     .started_by(42)
    ///     .input(&serde_json::json!({"file": "users.csv"}))
    ///     .insert(&mut conn)?;
    /// assert_eq!(op.status(), Status::Running);
    ///
    /// op.finish_with_output(&mut conn, &serde_json::json!({"imported": 120}))?;
    /// assert_eq!(op.result(), OperationResult::Successful);
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_synchronous(operation_type: impl Into<String>) -> NewOperation {
        NewOperation::new(operation_type.into(), true)
    }

    /// An operation for someone else to run later (a worker, a cron job): it is stored
    /// `unprocessed`, without a start time.
    pub fn create_asynchronous(operation_type: impl Into<String>) -> NewOperation {
        NewOperation::new(operation_type.into(), false)
    }
}

impl NewOperation {
    fn new(operation_type: String, starts_running: bool) -> Self {
        Self::with_details(operation_type, starts_running, OperationDetails::default())
    }

    /// A new operation with the details a caller gave (to `RunArgs`), on the `default` queue,
    /// tried once.
    pub(crate) fn with_details(
        operation_type: impl Into<String>,
        starts_running: bool,
        details: OperationDetails,
    ) -> Self {
        NewOperation {
            starts_running,
            operation_type: operation_type.into(),
            details,
            queue: DEFAULT_QUEUE.to_owned(),
            max_attempts: 1,
            parent_id: None,
        }
    }

    /// The worker queue to run on (default `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Priority within the queue; higher runs first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.details.set_priority(priority);
        self
    }

    /// No worker starts it before this instant.
    pub fn run_after(mut self, instant: DateTime<Utc>) -> Self {
        self.details.set_run_after(instant);
        self
    }

    /// How many starts it may have before it is failed for good (default 1; at least 1).
    pub fn max_attempts(mut self, attempts: u16) -> Self {
        self.max_attempts = i32::from(attempts.max(1));
        self
    }

    /// Makes it a child of the batch whose parent operation is `parent_id` (for the batch
    /// builder, which counts it in the batch's total).
    pub(crate) fn child_of(mut self, parent_id: Option<i64>) -> Self {
        self.parent_id = parent_id;
        self
    }

    /// The object the operation is about (a game, a blog post).
    pub fn context_object(mut self, context: &impl ContextObject) -> Self {
        self.details.set_context_object(context);
        self
    }

    /// The application's key for the user who started it (a user id, a username).
    pub fn started_by(mut self, user_key: impl fmt::Display) -> Self {
        self.details.set_started_by(user_key);
        self
    }

    /// The input data, stored as JSON. Any serializable value is kept as given, including an
    /// empty object `{}`; without this call the operation has no input data.
    pub fn input<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.details.set_input(data);
        self
    }

    /// Validates and inserts the operation, and returns it as stored.
    ///
    /// One `INSERT` (on MySQL/MariaDB followed by `SELECT LAST_INSERT_ID()`). Nothing is written
    /// when a value is too long or the input does not serialize.
    pub fn insert<C: BatchConnection>(self, conn: &mut C) -> Result<BatchOperation> {
        let Checked {
            context_object_type,
            context_object_id,
            started_by,
            input_data_json,
            priority,
            run_after,
        } = Checked::new(&self.operation_type, &self.queue, self.details)?;

        let now = now();
        let (status, started_running_datetime) = if self.starts_running {
            (Status::Running, Some(now))
        } else {
            (Status::Unprocessed, None)
        };
        let row = NewOperationRow {
            created_datetime: UtcDateTime(now),
            started_running_datetime: started_running_datetime.map(UtcDateTime),
            context_object_type: context_object_type.as_deref(),
            context_object_id: context_object_id.as_deref(),
            started_by: started_by.as_deref(),
            operationtype: &self.operation_type,
            status,
            result: OperationResult::NotAvailable,
            input_data_json: &input_data_json,
            output_data_json: "",
            queue: &self.queue,
            priority,
            run_after: run_after.map(UtcDateTime),
            max_attempts: self.max_attempts,
            parent_id: self.parent_id,
        };
        let id = conn.storage().insert_operation(&row)?;
        Ok(BatchOperation {
            id,
            created_datetime: now,
            started_running_datetime,
            finished_datetime: None,
            context_object_type,
            context_object_id,
            started_by,
            operationtype: self.operation_type,
            status,
            result: OperationResult::NotAvailable,
            input_data_json,
            output_data_json: String::new(),
            queue: self.queue,
            priority,
            run_after,
            attempts: 0,
            max_attempts: self.max_attempts,
            locked_by: None,
            heartbeat_datetime: None,
            progress_done: None,
            progress_total: None,
            cancel_requested: false,
            parent_id: self.parent_id,
        })
    }
}

impl BatchOperation {
    /// `unprocessed → running`, with the start time set to now.
    ///
    /// Fails with [`Error::IllegalTransition`] if the operation is not `unprocessed` (in memory,
    /// or in the database because another connection started it first), [`Error::Conflict`]
    /// inside a `REPEATABLE READ` transaction that lost such a race, or [`Error::NotFound`] if
    /// the row is gone; nothing changes then, in the database or in `self`.
    pub fn mark_as_running<C: BatchConnection>(&mut self, conn: &mut C) -> Result<()> {
        let now = now();
        let change = StatusChange {
            status: Status::Running,
            result: None,
            started_running_datetime: Some(UtcDateTime(now)),
            finished_datetime: None,
            output_data_json: None,
        };
        self.transition(conn, "mark_as_running", Status::Unprocessed, &change)?;
        self.status = Status::Running;
        self.started_running_datetime = Some(now);
        Ok(())
    }

    /// `running → finished` with result `successful` and no output data.
    ///
    /// Fails with [`Error::IllegalTransition`] unless the operation is `running` (a never-started
    /// or already finished one is left exactly as it was), and with [`Error::Conflict`] or
    /// [`Error::NotFound`] as [`mark_as_running`](Self::mark_as_running) does.
    pub fn finish<C: BatchConnection>(&mut self, conn: &mut C) -> Result<()> {
        self.finish_as(conn, OperationResult::Successful, None)
    }

    /// `running → finished` with result `successful`, storing `output` as the output data.
    /// Fails as [`finish`](Self::finish) does, or with [`Error::SerializeData`] before anything
    /// is written.
    pub fn finish_with_output<C, T>(&mut self, conn: &mut C, output: &T) -> Result<()>
    where
        C: BatchConnection,
        T: Serialize + ?Sized,
    {
        let output = serialize_output(output)?;
        self.finish_as(conn, OperationResult::Successful, Some(output))
    }

    /// `running → finished` with result `failed`, storing `error_data` as the output data.
    /// Fails as [`finish_with_output`](Self::finish_with_output) does.
    pub fn finish_failed<C, T>(&mut self, conn: &mut C, error_data: &T) -> Result<()>
    where
        C: BatchConnection,
        T: Serialize + ?Sized,
    {
        let output = serialize_output(error_data)?;
        self.finish_as(conn, OperationResult::Failed, Some(output))
    }

    /// The finish steps' shared body: one guarded `UPDATE ... WHERE status = 'running'`.
    fn finish_as<C: BatchConnection>(
        &mut self,
        conn: &mut C,
        result: OperationResult,
        output_data_json: Option<String>,
    ) -> Result<()> {
        let now = now();
        let change = StatusChange {
            status: Status::Finished,
            result: Some(result),
            started_running_datetime: None,
            finished_datetime: Some(UtcDateTime(now)),
            output_data_json: output_data_json.as_deref(),
        };
        match self.parent_id {
            None => self.transition(conn, "finish", Status::Running, &change)?,
            // A batch's child: counted in the batch in the same transaction (see `batch`).
            Some(parent) => conn.transaction(|conn| {
                self.transition(conn, "finish", Status::Running, &change)?;
                let mut tally = Tally::default();
                tally.add(parent, self.id, result);
                tally.count(conn.storage())?;
                Ok::<_, Error>(())
            })?,
        }
        self.status = Status::Finished;
        self.result = result;
        self.finished_datetime = Some(now);
        if let Some(output) = output_data_json {
            self.output_data_json = output;
        }
        Ok(())
    }

    /// Asks a running operation to stop: its action sees it through
    /// `ActionContext::is_cancel_requested` and may return early. Returns whether the
    /// operation was running (a pending one is cancelled with `OperationFilter::remove_pending`;
    /// a finished one has nothing to stop).
    pub fn request_cancel<C: BatchConnection>(&mut self, conn: &mut C) -> Result<bool> {
        let flagged = conn.storage().request_cancel(self.id)? == 1;
        if flagged {
            self.cancel_requested = true;
        }
        Ok(flagged)
    }

    /// Applies `change` if and only if the row is in status `from`, checking memory first so an
    /// obviously illegal step costs no query.
    fn transition<C: BatchConnection>(
        &self,
        conn: &mut C,
        action: &'static str,
        from: Status,
        change: &StatusChange<'_>,
    ) -> Result<()> {
        let illegal = |actual| Error::IllegalTransition {
            id: self.id,
            action,
            expected: from,
            actual,
        };
        if self.status != from {
            return Err(illegal(self.status));
        }
        let conflict = Error::Conflict {
            id: self.id,
            action,
            expected: from,
        };
        match conn.storage().change_status(self.id, from, change) {
            Ok(1) => return Ok(()),
            Ok(_) => {}
            // The database refused the UPDATE because of a concurrent change: on PostgreSQL in a
            // REPEATABLE READ or SERIALIZABLE transaction; on MySQL/MariaDB also in autocommit,
            // when InnoDB picks one of two UPDATEs of the same row, racing through the status
            // indexes, as a deadlock victim. Either way nothing changed and a retry decides.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            )) => return Err(conflict),
            Err(error) => return Err(error.into()),
        }
        // Lost a race (or the row is gone): report what the database holds now. Inside a
        // REPEATABLE READ transaction the read may still show the expected status although the
        // UPDATE (which reads the latest version) found another: that is a conflict to retry.
        match conn.storage().find_operation(self.id)? {
            Some(current) if current.status == from => Err(conflict),
            Some(current) => Err(illegal(current.status)),
            None => Err(Error::NotFound { id: self.id }),
        }
    }
}

/// A new operation's details, checked and ready to store: what [`NewOperation::insert`] and a
/// batch's children share, so both refuse the same values the same way.
pub(crate) struct Checked {
    pub(crate) context_object_type: Option<String>,
    pub(crate) context_object_id: Option<String>,
    pub(crate) started_by: Option<String>,
    pub(crate) input_data_json: String,
    pub(crate) priority: i32,
    pub(crate) run_after: Option<DateTime<Utc>>,
}

impl Checked {
    /// Checks an operation of `operation_type` on `queue` with `details`: every key fits its
    /// column and the input serialized.
    pub(crate) fn new(
        operation_type: &str,
        queue: &str,
        details: OperationDetails,
    ) -> Result<Self> {
        let OperationDetails {
            context_object,
            started_by,
            input,
            priority,
            run_after,
        } = details;
        let input_data_json = input.map_err(|source| Error::SerializeData {
            field: "input data",
            source,
        })?;
        check_length("operation type", operation_type)?;
        if let Some((type_key, id)) = context_object.as_ref().map(ContextRef::parts) {
            check_length("context object type", type_key)?;
            check_length("context object id", id)?;
        }
        if let Some(started_by) = &started_by {
            check_length("started_by", started_by)?;
        }
        check_length("queue", queue)?;
        let (context_object_type, context_object_id) = match context_object {
            Some(context) => {
                let (type_key, id) = context.into_parts();
                (Some(type_key), Some(id))
            }
            None => (None, None),
        };
        Ok(Checked {
            context_object_type,
            context_object_id,
            started_by,
            input_data_json,
            priority,
            run_after: run_after.map(|t| UtcDateTime(t).clamped().0.trunc_subsecs(6)),
        })
    }
}

/// Refuses a value longer than its `VARCHAR(255)` column ([`MAX_KEY_LENGTH`] characters), which
/// one backend would truncate and another reject.
pub(crate) fn check_length(field: &'static str, value: &str) -> Result<()> {
    let length = value.chars().count();
    if length > MAX_KEY_LENGTH {
        return Err(Error::ValueTooLong {
            field,
            length,
            limit: MAX_KEY_LENGTH,
        });
    }
    Ok(())
}

fn serialize_output<T: Serialize + ?Sized>(output: &T) -> Result<String> {
    serde_json::to_string(output).map_err(|source| Error::SerializeData {
        field: "output data",
        source,
    })
}
