//! The action registry: operation types mapped to groups of actions, run inline or recorded for
//! workers.
//!
//! A [`Registry`] is an ordinary value built once and handed to the code that runs operations
//! (there is no process-wide singleton, and nothing needs a queue library to run synchronously).
//!
//! ```
//! use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
//! use batchframework_diesel::{OperationResult, Status};
//! use diesel::{Connection, SqliteConnection};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry: Registry<SqliteConnection> = Registry::builder()
//!     .group(
//!         ActionGroup::new("import-users")
//!             .action(action_fn("read", |ctx| Ok(serde_json::json!({"rows": 3}))))
//!             .action(action_fn("notify", |ctx| Ok(serde_json::Value::Null))),
//!     )
//!     .build()?;
//!
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//! let info = registry.run(&mut conn, "import-users", RunArgs::new())?;
//! assert_eq!(info.operation.status(), Status::Finished);
//! assert_eq!(info.operation.result(), OperationResult::Successful);
//! let result = info.result.expect("ran synchronously");
//! assert_eq!(result.results[0].success_output_data, Some(serde_json::json!({"rows": 3})));
//! # Ok(())
//! # }
//! ```

mod action;
pub(crate) mod engine;
mod result;
mod run;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use action::{action_fn, Action, ActionContext, ActionError, FnAction};
pub use result::{ActionGroupResult, ActionResult, ErrorData};
pub use run::{ExecutionInfo, RunArgs};

/// Also at the crate root, with [`DEFAULT_QUEUE`](crate::DEFAULT_QUEUE); kept here for code
/// that imports it from the registry.
pub use crate::lifecycle::HIGH_PRIORITY_QUEUE;

use crate::backend::BatchConnection;
use crate::error::{Error, Result};
use crate::lifecycle::{NewOperation, DEFAULT_QUEUE};
use engine::run_actions;

/// The environment variable that, set to `1` (or `true`, `yes`), makes every group run inline.
pub const ALWAYS_SYNCHRONOUS_ENV: &str = "BATCHFRAMEWORK_ALWAYS_SYNCHRONOUS";

/// How a group runs when asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inline, in the caller, before `run` returns.
    Synchronous,
    /// Recorded as an `unprocessed` operation for a worker.
    Asynchronous,
}

/// An operation type's ordered actions and how to run them.
pub struct ActionGroup<C> {
    name: String,
    actions: Vec<Arc<dyn Action<C>>>,
    mode: Mode,
    queue: String,
    max_attempts: u16,
    retry_backoff: Duration,
}

impl<C: 'static> fmt::Debug for ActionGroup<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(|a| a.name()).collect();
        f.debug_struct("ActionGroup")
            .field("name", &self.name)
            .field("actions", &actions)
            .field("mode", &self.mode)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .finish()
    }
}

impl<C: 'static> ActionGroup<C> {
    /// A synchronous group named `name` (the operation type), on the `default` queue, tried once.
    pub fn new(name: impl Into<String>) -> Self {
        ActionGroup {
            name: name.into(),
            actions: Vec::new(),
            mode: Mode::Synchronous,
            queue: DEFAULT_QUEUE.to_owned(),
            max_attempts: 1,
            retry_backoff: Duration::from_secs(10),
        }
    }

    /// Appends an action; actions run in the order they are added. A second action with the
    /// same name makes [`RegistryBuilder::build`] fail.
    pub fn action(mut self, action: impl Action<C>) -> Self {
        self.actions.push(Arc::new(action));
        self
    }

    /// Appends an action made from a name and a closure, like [`action_fn`], but typed by this
    /// group's connection: the closure's `ctx` needs no annotation even when it calls Diesel
    /// methods on `ctx.conn()`, provided the group's connection type is known by then (as it is
    /// inside [`RegistryBuilder::group_with`] on a `Registry::<PgConnection>::builder()`).
    pub fn action_fn<F>(self, name: impl Into<String>, run: F) -> Self
    where
        F: Fn(&mut ActionContext<'_, C>) -> std::result::Result<serde_json::Value, ActionError>
            + Send
            + Sync
            + 'static,
        C: BatchConnection,
    {
        self.action(action_fn(name, run))
    }

    /// Runs inline when asked (the default).
    pub fn synchronous(mut self) -> Self {
        self.mode = Mode::Synchronous;
        self
    }

    /// Records an `unprocessed` operation for a worker when asked.
    pub fn asynchronous(mut self) -> Self {
        self.mode = Mode::Asynchronous;
        self
    }

    /// The worker queue (`default`, `highpriority`, or one declared with
    /// [`RegistryBuilder::queue`]).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How many times a worker may start it before it is failed for good (at least 1).
    pub fn max_attempts(mut self, attempts: u16) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the first retry; it doubles with each further attempt.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The group's name (its operation type).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Its queue.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// How many starts its operations may have.
    pub(crate) fn attempts_allowed(&self) -> i32 {
        i32::from(self.max_attempts)
    }

    /// The delay before its first retry.
    pub fn backoff(&self) -> Duration {
        self.retry_backoff
    }
}

/// Operation types and their action groups, for connections of type `C`.
pub struct Registry<C> {
    groups: HashMap<String, ActionGroup<C>>,
    queues: BTreeSet<String>,
    always_synchronous: bool,
}

impl<C: 'static> fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("groups", &self.groups.values().collect::<Vec<_>>())
            .field("queues", &self.queues)
            .field("always_synchronous", &self.always_synchronous)
            .finish()
    }
}

/// Builds a [`Registry`]; every mistake is reported by [`build`](Self::build).
pub struct RegistryBuilder<C> {
    groups: Vec<ActionGroup<C>>,
    queues: BTreeSet<String>,
    always_synchronous: bool,
}

impl<C: BatchConnection + 'static> Registry<C> {
    /// An empty registry with the `default` and `highpriority` queues.
    pub fn builder() -> RegistryBuilder<C> {
        RegistryBuilder {
            groups: Vec::new(),
            queues: [DEFAULT_QUEUE, HIGH_PRIORITY_QUEUE]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            always_synchronous: false,
        }
    }

    /// The group for an operation type.
    pub fn group(&self, name: &str) -> Option<&ActionGroup<C>> {
        self.groups.get(name)
    }

    /// The operation types it has a group for, in no particular order. A worker claims only
    /// these.
    pub fn operation_types(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The queues workers may serve.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(String::as_str)
    }

    /// The group `name`, or [`Error::UnknownActionGroup`].
    pub(crate) fn known_group(&self, name: &str) -> Result<&ActionGroup<C>> {
        self.groups
            .get(name)
            .ok_or_else(|| Error::UnknownActionGroup {
                name: name.to_owned(),
                known: self.groups.keys().cloned().collect(),
            })
    }

    /// Whether every group runs inline whatever its mode.
    pub fn is_always_synchronous(&self) -> bool {
        self.always_synchronous
    }

    /// Runs the group `name`: inline (recording the operation as `running`, then `finished`
    /// with the group result as output data), or, for an asynchronous group, by recording an
    /// `unprocessed` operation on its queue for a worker.
    ///
    /// An unknown group is an [`Error::UnknownActionGroup`] before anything is written. Actions
    /// run in order; one that fails or panics is recorded and the later ones still run; the
    /// operation's result is `failed` if any action failed.
    ///
    /// Inline, the actions use `conn`, your connection: an action that panics inside its own
    /// `conn.transaction(...)` leaves that transaction open, as any Diesel code would (Diesel
    /// rolls back on an `Err`, not on a panic), and the finish is then written inside it. Return
    /// an error from such a transaction instead of panicking. Workers clean this up themselves.
    pub fn run(&self, conn: &mut C, name: &str, args: RunArgs) -> Result<ExecutionInfo> {
        let group = self.known_group(name)?;
        let inline = self.always_synchronous || group.mode == Mode::Synchronous;
        let mut details = args.details;
        if inline && details.has_run_after() {
            if !self.always_synchronous {
                return Err(Error::DelayedSynchronousRun {
                    name: name.to_owned(),
                });
            }
            // Forced inline (for tests and debugging): it runs now, whatever the delay.
            details.clear_run_after();
        }
        // Inline, it is stored `running`, as `BatchOperation::create_synchronous` stores it.
        let mut operation = NewOperation::with_details(name, inline, details)
            .queue(group.queue.clone())
            .max_attempts(group.max_attempts)
            .insert(conn)?;
        if !inline {
            return Ok(ExecutionInfo {
                operation,
                result: None,
            });
        }
        let result = run_actions(conn, group, &operation);
        if result.failed() {
            operation.finish_failed(conn, &result)?;
        } else {
            operation.finish_with_output(conn, &result)?;
        }
        Ok(ExecutionInfo {
            operation,
            result: Some(result),
        })
    }
}

impl<C: BatchConnection + 'static> RegistryBuilder<C> {
    /// Adds an action group.
    pub fn group(mut self, group: ActionGroup<C>) -> Self {
        self.groups.push(group);
        self
    }

    /// Adds the action group `name`, set up by `configure` from [`ActionGroup::new`].
    ///
    /// Unlike [`group`](Self::group), the group is made here, where the connection type is
    /// already known (write it on the builder: `Registry::<PgConnection>::builder()`), so
    /// closures given to [`ActionGroup::action_fn`] are typed without annotations and can call
    /// Diesel methods on `ctx.conn()`.
    pub fn group_with(
        self,
        name: impl Into<String>,
        configure: impl FnOnce(ActionGroup<C>) -> ActionGroup<C>,
    ) -> Self {
        self.group(configure(ActionGroup::new(name)))
    }

    /// Declares a queue besides `default` and `highpriority`.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queues.insert(name.into());
        self
    }

    /// Runs every group inline, whatever its mode (for tests and debugging). The environment
    /// variable [`ALWAYS_SYNCHRONOUS_ENV`] set to `1` does the same.
    pub fn always_synchronous(mut self, on: bool) -> Self {
        self.always_synchronous = on;
        self
    }

    /// The registry, or the first mistake: a group without actions, two actions of one name
    /// in a group, two groups of one name, a queue that was not declared.
    pub fn build(self) -> Result<Registry<C>> {
        let mut groups = HashMap::new();
        for group in self.groups {
            let invalid = |reason: String| Error::InvalidActionGroup {
                name: group.name.clone(),
                reason,
            };
            if group.actions.is_empty() {
                return Err(invalid("it has no actions".into()));
            }
            let mut names = BTreeSet::new();
            for action in &group.actions {
                if !names.insert(action.name()) {
                    return Err(invalid(format!(
                        "it has two actions named `{}`; give each a unique name",
                        action.name()
                    )));
                }
            }
            if !self.queues.contains(&group.queue) {
                return Err(invalid(format!(
                    "its queue `{}` is not declared; declare it with RegistryBuilder::queue \
                     (known: {:?})",
                    group.queue, self.queues
                )));
            }
            if groups.contains_key(&group.name) {
                return Err(invalid("another group has the same name".into()));
            }
            groups.insert(group.name.clone(), group);
        }
        let from_env = std::env::var(ALWAYS_SYNCHRONOUS_ENV).ok();
        Ok(Registry {
            groups,
            queues: self.queues,
            always_synchronous: self.always_synchronous || env_flag(from_env.as_deref()),
        })
    }
}

/// `1`, `true` or `yes` (any case) turn a flag variable on.
fn env_flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["1", "true", "yes"]
            .iter()
            .any(|on| v.eq_ignore_ascii_case(on))
    })
}

#[cfg(test)]
mod tests {
    use super::env_flag;

    #[test]
    fn the_always_synchronous_variable_is_a_flag() {
        for on in ["1", "true", "TRUE", "yes"] {
            assert!(env_flag(Some(on)), "{on}");
        }
        for off in [None, Some(""), Some("0"), Some("false"), Some("no")] {
            assert!(!env_flag(off), "{off:?}");
        }
    }
}
