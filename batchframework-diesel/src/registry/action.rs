//! `Action`: one unit of work, and the context it runs with.

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::{BatchConnection, Storage};
use crate::context::ContextRef;
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::registry::result::{ActionGroupResult, ErrorData};
use crate::status::OperationResult;

/// One unit of work of an action group, run with a connection of type `C`.
///
/// Implement it on a type, or wrap a closure with [`action_fn`].
pub trait Action<C>: Send + Sync + 'static {
    /// The action's name in results; unique within its group.
    fn name(&self) -> &str;

    /// Does the work. The returned value is kept as the action's `success_output_data`; an
    /// error (or a panic) is recorded as its `errordata` and does not stop the group's later
    /// actions.
    fn execute(&self, ctx: &mut ActionContext<'_, C>) -> Result<Value, ActionError>;
}

/// An action made from a name and a closure.
pub fn action_fn<C, F>(name: impl Into<String>, run: F) -> FnAction<F>
where
    F: Fn(&mut ActionContext<'_, C>) -> Result<Value, ActionError> + Send + Sync + 'static,
{
    FnAction {
        name: name.into(),
        run,
    }
}

/// The action [`action_fn`] makes.
pub struct FnAction<F> {
    name: String,
    run: F,
}

impl<F> fmt::Debug for FnAction<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAction")
            .field("name", &self.name)
            .finish()
    }
}

impl<C, F> Action<C> for FnAction<F>
where
    F: Fn(&mut ActionContext<'_, C>) -> Result<Value, ActionError> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, ctx: &mut ActionContext<'_, C>) -> Result<Value, ActionError> {
        (self.run)(ctx)
    }
}

/// Why an action failed: JSON data and a traceback, recorded as the action's `errordata`.
///
/// `?` converts into it from any error an action is likely to meet: every
/// `E: std::error::Error + Send + Sync + 'static` (Diesel's, serde's, your own `thiserror`
/// enums), a `Box<dyn Error + Send + Sync>`, an `anyhow::Error`, a `String` or a `&str`. The
/// error's message becomes the data and its chain of causes the traceback.
/// [`ActionError::msg`] makes one from a message, [`ActionError::with_data`] from structured
/// data.
///
/// ```
/// use batchframework_diesel::registry::ActionError;
///
/// fn parse(text: &str) -> Result<u32, ActionError> {
///     if text.is_empty() {
///         return Err(ActionError::msg("nothing to parse"));
///     }
///     Ok(text.parse::<u32>()?) // a ParseIntError
/// }
///
/// fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     Err("the file is gone".into())
/// }
///
/// fn action() -> Result<(), ActionError> {
///     boxed()?; // a boxed error converts too
///     Ok(())
/// }
///
/// assert_eq!(parse("").unwrap_err().data(), &serde_json::json!("nothing to parse"));
/// assert!(parse("x").is_err());
/// assert_eq!(action().unwrap_err().data(), &serde_json::json!("the file is gone"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ActionError(pub(crate) ErrorData);

impl ActionError {
    /// An error with this JSON as its data.
    pub fn with_data(data: Value, traceback: impl Into<String>) -> Self {
        ActionError(ErrorData {
            data,
            traceback: traceback.into(),
        })
    }

    /// An error with this message as its data and traceback.
    pub fn msg(message: impl fmt::Display) -> Self {
        let message = message.to_string();
        ActionError(ErrorData {
            data: Value::String(message.clone()),
            traceback: message,
        })
    }

    /// The error's data, as it will be recorded.
    pub fn data(&self) -> &Value {
        &self.0.data
    }

    /// The error's traceback: its message and the chain of causes, one per line.
    pub fn traceback(&self) -> &str {
        &self.0.traceback
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.data {
            Value::String(message) => f.write_str(message),
            data => write!(f, "{data}"),
        }
    }
}

// One blanket conversion rather than `From<E: Error>` plus `From<Box<dyn Error>>`: the two would
// overlap (std may one day make the box an `Error`), and everything `?` should take converts
// into the box: errors, boxed errors, anyhow's, strings. `ActionError` itself is not an `Error`,
// which keeps this apart from `From<T> for T`.
impl<E> From<E> for ActionError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(error: E) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
        let mut traceback = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            traceback.push_str("\ncaused by: ");
            traceback.push_str(&cause.to_string());
            source = cause.source();
        }
        ActionError(ErrorData {
            data: Value::String(error.to_string()),
            traceback,
        })
    }
}

/// What an action runs with: the operation, a connection, and progress and cancellation.
pub struct ActionContext<'a, C> {
    conn: &'a mut C,
    operation: &'a BatchOperation,
    last_progress: Option<Instant>,
}

/// Progress is written at most this often; calls in between are dropped.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

impl<'a, C: BatchConnection> ActionContext<'a, C> {
    pub(crate) fn new(conn: &'a mut C, operation: &'a BatchOperation) -> Self {
        ActionContext {
            conn,
            operation,
            last_progress: None,
        }
    }

    /// A connection to the database (the caller's when run synchronously, the worker's pooled
    /// one otherwise).
    pub fn conn(&mut self) -> &mut C {
        self.conn
    }

    /// The operation being run.
    ///
    /// The reference outlives this borrow of the context, so the operation and the connection
    /// can be used together: `let op = ctx.operation(); bulk_insert_tracked(ctx.conn(), op, rows)?`.
    pub fn operation(&self) -> &'a BatchOperation {
        self.operation
    }

    /// Which run of the operation this is: 1 for the first (and for a synchronous run), 2 and
    /// more when a worker runs it again, after a failure or because the worker that ran it
    /// before died mid-run. An operator's [`admin::retry`](crate::admin::retry) counts afresh.
    pub fn attempt(&self) -> i32 {
        self.operation.attempts().max(1)
    }

    /// A key that is the same for every run of this operation and different for every other
    /// operation of the database: `batchframework-operation-<id>`. An action's effects on
    /// other systems may happen more than once, since an action whose worker died runs again;
    /// pass this as the idempotency key those systems take (a payment provider's, a mail
    /// service's), or store it with what the action creates and skip what already exists.
    ///
    /// ```
    /// # use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup};
    /// # use diesel::SqliteConnection;
    /// # fn send(_to: &str, _idempotency_key: &str) -> Result<(), std::io::Error> { Ok(()) }
    /// let group = ActionGroup::new("send-invoice").asynchronous().action(action_fn(
    ///     "send",
    ///     |ctx: &mut batchframework_diesel::registry::ActionContext<'_, SqliteConnection>| {
    ///         // A rerun after a lost worker sends the same key: the mail service sends once.
    ///         send("billing@example.com", &ctx.idempotency_key())?;
    ///         Ok(serde_json::json!({ "attempt": ctx.attempt() }))
    ///     },
    /// ));
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("batchframework-operation-{}", self.operation.id())
    }

    /// The operation's input data as `T` (`Ok(None)` when there is none).
    pub fn input<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.operation.input_data()
    }

    /// The context object the operation is about, if any.
    pub fn context_object(&self) -> Option<ContextRef> {
        match (
            self.operation.context_object_type(),
            self.operation.context_object_id(),
        ) {
            (Some(type_key), Some(id)) => Some(ContextRef::new(type_key.to_owned(), id)),
            _ => None,
        }
    }

    /// Who started the operation, if recorded.
    pub fn started_by(&self) -> Option<&str> {
        self.operation.started_by()
    }

    /// Reports progress: `done` of `total` (if known). Written to the operation at most four
    /// times a second; calls in between are dropped, so call it as often as is convenient. The
    /// report that reaches the total is always written, so a finished run shows all done.
    pub fn progress(&mut self, done: i64, total: Option<i64>) -> Result<()> {
        let complete = total.is_some_and(|total| done >= total);
        if !complete
            && self
                .last_progress
                .is_some_and(|last| last.elapsed() < PROGRESS_INTERVAL)
        {
            return Ok(());
        }
        self.last_progress = Some(Instant::now());
        self.conn
            .storage()
            .update_progress(self.operation.id(), done, total)?;
        Ok(())
    }

    /// The steps this operation's workflow step runs after, as (step name, operation id), by id;
    /// empty for an operation that is no workflow step (see [`workflow`](crate::workflow)).
    pub fn dependencies(&mut self) -> Result<Vec<(String, i64)>> {
        let steps = self.conn.storage().dependencies_of(self.operation.id())?;
        Ok(steps.into_iter().map(|step| (step.name, step.id)).collect())
    }

    /// The id of the step named `step` that this workflow step runs after.
    ///
    /// # Errors
    ///
    /// [`Error::NotADependency`](crate::Error::NotADependency) when this step does not run
    /// after a step of that name.
    pub fn dependency(&mut self, step: &str) -> Result<i64> {
        self.dependencies()?
            .into_iter()
            .find(|(name, _)| name == step)
            .map(|(_, id)| id)
            .ok_or_else(|| Error::NotADependency {
                id: self.operation.id(),
                dependency: step.to_owned(),
            })
    }

    /// What the step `id`, which this workflow step runs after, produced, as `T`: the value its
    /// group's last action returned (for a step finished by hand with an output, that output).
    /// `Ok(None)` when the dependency failed (a step made with
    /// [`Step::even_if_dependencies_fail`](crate::workflow::Step::even_if_dependencies_fail)
    /// runs after failed ones) or produced nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotADependency`](crate::Error::NotADependency) when this step does not run
    /// after `id`; [`Error::InvalidJson`](crate::Error::InvalidJson) when the output is not a
    /// `T`.
    pub fn dependency_output<T: DeserializeOwned>(&mut self, id: i64) -> Result<Option<T>> {
        let known = self.dependencies()?.iter().any(|&(_, dep)| dep == id);
        let found = if known {
            self.conn.storage().find_operation(id)?
        } else {
            None
        };
        let Some(dependency) = found else {
            return Err(Error::NotADependency {
                id: self.operation.id(),
                dependency: id.to_string(),
            });
        };
        if dependency.result() == OperationResult::Failed {
            return Ok(None);
        }
        let Some(output) = dependency.output_data::<Value>()? else {
            return Ok(None);
        };
        let value = match serde_json::from_value::<ActionGroupResult>(output.clone()) {
            Ok(group) => match group.results.into_iter().last() {
                Some(last) if !last.failed => last.success_output_data.unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Err(_) => output,
        };
        if value.is_null() {
            return Ok(None);
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|source| Error::InvalidJson {
                id,
                field: "output data",
                source,
            })
    }

    /// Whether someone asked this operation to stop ([`BatchOperation::request_cancel`]). A
    /// long action checks it now and then and returns early.
    pub fn is_cancel_requested(&mut self) -> Result<bool> {
        Ok(self
            .conn
            .storage()
            .cancel_requested(self.operation.id())?
            .unwrap_or(false))
    }
}
