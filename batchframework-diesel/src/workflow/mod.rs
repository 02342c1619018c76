//! Workflows: steps that run after the steps they depend on, and read their outputs.
//!
//! A workflow is a [batch](crate::batch) whose children, its *steps*, are named and may depend
//! on one another: `download`, then `users` and `orders` in parallel, then `report`.
//! [`Registry::workflow`](crate::registry::Registry::workflow) checks the steps (names unique,
//! every dependency a step of the workflow, no cycle) before anything is stored, then records
//! the parent and every step in one transaction. Everything a batch has, a workflow has too:
//! counts and progress ([`BatchOperation::batch_progress`]), `on_success` and `on_complete`
//! callbacks run exactly once, [`cancel_batch`](crate::batch::cancel_batch), and
//! [`BatchOperation::wait`] on the parent.
//!
//! ```
//! use batchframework_diesel::registry::{ActionContext, ActionError, Registry, RunArgs};
//! use batchframework_diesel::workflow::Step;
//! use batchframework_diesel::BatchOperation;
//! use diesel::{Connection, SqliteConnection};
//! use serde_json::{json, Value};
//!
//! type Ctx<'a> = ActionContext<'a, SqliteConnection>;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry: Registry<SqliteConnection> = Registry::builder()
//!     .group_with("download", |g| g.asynchronous().action_fn("get", |_| Ok(json!(3))))
//!     .group_with("count", |g| {
//!         g.asynchronous().action_fn("count", |ctx: &mut Ctx<'_>| {
//!             // The output of the step named "download", which this one runs after.
//!             let download = ctx.dependency("download")?;
//!             let files: u64 = ctx.dependency_output(download)?.unwrap_or(0);
//!             Ok(json!(files * 10))
//!         })
//!     })
//!     .group_with("report", |g| g.asynchronous().action_fn("mail", |_| Ok(Value::Null)))
//!     .build()?;
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//!
//! let workflow = registry
//!     .workflow("nightly-import")
//!     .step(Step::new("download", "download", RunArgs::new()))
//!     .step(Step::new("users", "count", RunArgs::new()).after(["download"]))
//!     .step(Step::new("orders", "count", RunArgs::new()).after(["download"]))
//!     .step(Step::new("report", "report", RunArgs::new()).after(["users", "orders"]))
//!     .enqueue(&mut conn)?;
//!
//! // Only "download" is due; the others wait for their dependencies.
//! let users = workflow.step_id("users").expect("a step");
//! assert!(BatchOperation::find(&mut conn, users)?.is_waiting_for_dependencies());
//!
//! // A worker runs the steps as they become due; here "download" is finished by hand. The
//! // transaction that finishes it releases "users" and "orders"; "report" waits for both.
//! let mut download = BatchOperation::find(&mut conn, workflow.step_id("download").unwrap())?;
//! download.mark_as_running(&mut conn)?;
//! download.finish_with_output(&mut conn, &json!(3))?;
//! assert!(!BatchOperation::find(&mut conn, users)?.is_waiting_for_dependencies());
//! let report = workflow.step_id("report").expect("a step");
//! assert!(BatchOperation::find(&mut conn, report)?.is_waiting_for_dependencies());
//! # Ok(())
//! # }
//! ```
//!
//! # Waiting, and being released
//!
//! A step with dependencies is recorded as an ordinary pending child whose `run_after` is
//! 9999-12-31 ([`BatchOperation::is_waiting_for_dependencies`]), so no worker's claim reaches
//! it (and any number of waiting steps costs claims nothing; the operators' overview counts
//! them as delayed); `batchframework_step` keeps how many of its dependencies have yet to finish. The
//! transaction that finishes a step (a worker's group commit, a finish by hand, a cancel)
//! also counts it into each of its dependents, by an `UPDATE` that locks their rows, and
//! releases those with nothing left to wait for (`run_after` back to NULL; on PostgreSQL the
//! change wakes idle workers). Of two transactions finishing a step's last two dependencies
//! together, the second waits for the first's lock and reads the count the first left: the
//! step is released exactly once, and never before every dependency has finished.
//!
//! # When a dependency fails
//!
//! A step whose dependency finished `failed` (for good: a step retried by its worker is not
//! finished until its last attempt) is cancelled, in the same transaction: finished `failed`
//! with `{"cancelled": true, "reason": "dependency <id> failed"}`, and the steps after it in
//! turn. A step made with [`Step::even_if_dependencies_fail`] instead runs once all of its
//! dependencies have finished, whatever their results. The workflow then completes as a batch
//! does, `failed` if any step failed or was cancelled.
//!
//! # Reading a dependency's output
//!
//! An action reads what a step it depends on produced with
//! [`ActionContext::dependency_output`](crate::registry::ActionContext::dependency_output):
//! the value the dependency's last action returned. [`ActionContext::dependency`](crate::registry::ActionContext::dependency)
//! finds a dependency's id by its step name. Asking for an operation the step does not depend
//! on is an [`Error::NotADependency`](crate::Error::NotADependency).
//!
//! [`BatchOperation::batch_progress`]: crate::BatchOperation::batch_progress
//! [`BatchOperation::is_waiting_for_dependencies`]: crate::BatchOperation::is_waiting_for_dependencies
//! [`BatchOperation::wait`]: crate::BatchOperation::wait

mod builder;
mod graph;

pub use builder::{Step, Workflow, WorkflowBuilder};
