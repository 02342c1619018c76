//! [`WorkflowBuilder`]: a workflow's parent and named steps, checked, and the transaction that
//! records them with their dependencies.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::graph;
use crate::backend::workflows::{waiting_run_after, DependencyRow, StepRow};
use crate::backend::{now, BatchConnection, Storage, UtcDateTime};
use crate::batch::{child_row, BatchBuilder, Child};
use crate::completion;
use crate::context::ContextObject;
use crate::error::{Error, Result};
use crate::lifecycle::check_length;
use crate::operation::BatchOperation;
use crate::registry::{Registry, RunArgs};

/// One step of a workflow: an operation of a registered group, with a name the workflow's
/// other steps depend on it by.
#[derive(Debug)]
pub struct Step {
    name: String,
    child: Child,
    after: Vec<String>,
    run_if_dependencies_fail: bool,
}

impl Step {
    /// A step named `name` (unique in its workflow, at most 255 characters) running the group
    /// `group` of the registry with `args` (input, context object, priority; a delay only for a
    /// step without dependencies).
    pub fn new(name: impl Into<String>, group: impl Into<String>, args: RunArgs) -> Self {
        Step {
            name: name.into(),
            child: Child::new(group, args),
            after: Vec::new(),
            run_if_dependencies_fail: false,
        }
    }

    /// Starts only once the steps named `steps` have all finished. May be given several times.
    pub fn after<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after.extend(steps.into_iter().map(Into::into));
        self
    }

    /// Runs once its dependencies have finished even if some failed. By default a step whose
    /// dependency fails for good is cancelled (finished `failed`, `{"cancelled": true,
    /// "reason": "dependency <id> failed"}`), and so are the steps after it.
    pub fn even_if_dependencies_fail(mut self) -> Self {
        self.run_if_dependencies_fail = true;
        self
    }
}

/// Builds a workflow: from [`Registry::workflow`]; [`enqueue`](Self::enqueue) records it.
#[must_use = "nothing is stored until you call `.enqueue(&mut conn)`"]
pub struct WorkflowBuilder<'r, C> {
    parent: BatchBuilder<'r, C>,
    steps: Vec<Step>,
}

impl<C> fmt::Debug for WorkflowBuilder<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowBuilder")
            .field("parent", &self.parent)
            .field("steps", &self.steps)
            .finish()
    }
}

impl<C: BatchConnection + 'static> Registry<C> {
    /// A workflow whose parent operation has type `operation_type` (a label, as a batch's). See
    /// the [`workflow`](crate::workflow) module.
    pub fn workflow(&self, operation_type: impl Into<String>) -> WorkflowBuilder<'_, C> {
        WorkflowBuilder {
            parent: self.batch(operation_type),
            steps: Vec::new(),
        }
    }
}

impl<C: BatchConnection + 'static> WorkflowBuilder<'_, C> {
    /// Adds a step.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// The object the workflow is about, stored on the parent.
    pub fn context_object(mut self, context: &impl ContextObject) -> Self {
        self.parent = self.parent.context_object(context);
        self
    }

    /// The application's key for the user who started the workflow, stored on the parent.
    pub fn started_by(mut self, user_key: impl fmt::Display) -> Self {
        self.parent = self.parent.started_by(user_key);
        self
    }

    /// The parent's input data, as JSON.
    pub fn input<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.parent = self.parent.input(data);
        self
    }

    /// Enqueues an operation of group `group` when every step has succeeded, with the
    /// [`BatchSummary`](crate::batch::BatchSummary) as input.
    pub fn on_success(mut self, group: impl Into<String>) -> Self {
        self.parent = self.parent.on_success(group);
        self
    }

    /// Enqueues an operation of group `group` when every step has finished, whatever the
    /// results (cancelled steps included), with the [`BatchSummary`](crate::batch::BatchSummary)
    /// as input.
    pub fn on_complete(mut self, group: impl Into<String>) -> Self {
        self.parent = self.parent.on_complete(group);
        self
    }

    /// Checks the steps (names unique, dependencies naming steps of the workflow, no cycle),
    /// then records the workflow in one transaction (a savepoint inside the caller's): the
    /// parent, `running`; every step, `unprocessed` (in an order where each comes after its
    /// dependencies); the steps' rows and their dependencies; the counts row. Steps without
    /// dependencies are due at once; the others wait. A workflow without steps completes at
    /// once.
    ///
    /// # Errors
    ///
    /// Nothing is stored when any of these is returned:
    /// [`Error::DuplicateStep`], [`Error::UnknownStep`], [`Error::DependencyCycle`];
    /// [`Error::DelayedStep`] for a step with both a delay and dependencies;
    /// [`Error::UnknownActionGroup`] for a step's or a callback's group the registry does not
    /// have; [`Error::ValueTooLong`] or [`Error::SerializeData`] for a step's details.
    pub fn enqueue(self, conn: &mut C) -> Result<Workflow> {
        let order = {
            let shape: Vec<(&str, &[String])> = self
                .steps
                .iter()
                .map(|step| (step.name.as_str(), step.after.as_slice()))
                .collect();
            graph::run_order(&shape)?
        };
        for step in &self.steps {
            check_length("workflow step name", &step.name)?;
        }
        let mut steps: Vec<Option<Step>> = self.steps.into_iter().map(Some).collect();
        let ordered: Vec<Step> = order.iter().filter_map(|&i| steps[i].take()).collect();
        let parent = self.parent;
        conn.transaction(|conn| record(conn, parent, ordered))
    }
}

/// Records the workflow whose steps are `steps`, in run order, in the caller's transaction.
fn record<C: BatchConnection + 'static>(
    conn: &mut C,
    parent: BatchBuilder<'_, C>,
    steps: Vec<Step>,
) -> Result<Workflow> {
    let registry = parent.registry();
    let total = i64::try_from(steps.len()).map_err(|_| Error::Internal("workflow too large"))?;
    let created = UtcDateTime(now());
    let mut rows = Vec::with_capacity(steps.len());
    let mut shapes = Vec::with_capacity(steps.len());
    for step in steps {
        let mut row = child_row(registry, step.child, 0, created)?;
        if !step.after.is_empty() {
            if row.run_after.is_some() {
                return Err(Error::DelayedStep { step: step.name });
            }
            row.run_after = Some(UtcDateTime(waiting_run_after()));
        }
        rows.push(row);
        shapes.push((step.name, step.after, step.run_if_dependencies_fail));
    }
    let mut operation = parent.record_parent(conn, total, true)?;
    let id = operation.id();
    for row in &mut rows {
        row.parent_id = id;
    }
    conn.storage().insert_children(&mut rows.into_iter())?;
    // Ids are handed out in insertion order, so the parent's pending children, by id, are the
    // steps in the order they were sent.
    let ids = conn.storage().pending_children(id)?;
    if ids.len() != shapes.len() {
        return Err(Error::Internal("a workflow's steps were not all read back"));
    }
    let named: Vec<(String, i64)> = shapes
        .iter()
        .zip(&ids)
        .map(|((name, _, _), &id)| (name.clone(), id))
        .collect();
    let index: HashMap<&str, i64> = named.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    let mut dependencies = Vec::new();
    let mut step_rows = Vec::with_capacity(shapes.len());
    for ((name, after, run_if_dependencies_fail), &operation_id) in shapes.into_iter().zip(&ids) {
        let mut waits_for: Vec<i64> = after
            .iter()
            .filter_map(|dep| index.get(dep.as_str()).copied())
            .collect();
        waits_for.sort_unstable();
        waits_for.dedup();
        dependencies.extend(waits_for.iter().map(|&depends_on_id| DependencyRow {
            depends_on_id,
            operation_id,
        }));
        step_rows.push(StepRow {
            operation_id,
            name,
            waiting_for: i32::try_from(waits_for.len()).unwrap_or(i32::MAX),
            failed_dependencies: 0,
            run_if_dependencies_fail,
        });
    }
    conn.storage().insert_steps(&mut step_rows.into_iter())?;
    conn.storage()
        .insert_dependencies(&mut dependencies.into_iter())?;
    if total == 0 {
        completion::complete_empty(conn.storage(), id)?;
        operation = BatchOperation::find(conn, id)?;
    }
    Ok(Workflow {
        operation,
        steps: named,
    })
}

/// A recorded workflow: its parent operation and its steps' ids.
#[derive(Debug, Clone)]
pub struct Workflow {
    operation: BatchOperation,
    steps: Vec<(String, i64)>,
}

impl Workflow {
    /// The parent operation's id: what [`BatchOperation::wait`], [`cancel_batch`](crate::batch::cancel_batch)
    /// and [`BatchOperation::batch_progress`] take.
    pub fn id(&self) -> i64 {
        self.operation.id()
    }

    /// The parent operation, as recorded.
    pub fn operation(&self) -> &BatchOperation {
        &self.operation
    }

    /// The id of the step named `name`, if the workflow has one.
    pub fn step_id(&self, name: &str) -> Option<i64> {
        self.steps
            .iter()
            .find(|(step, _)| step == name)
            .map(|&(_, id)| id)
    }

    /// Every step's name and id, in the order they were recorded (each after its
    /// dependencies).
    pub fn steps(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.steps.iter().map(|(name, id)| (name.as_str(), *id))
    }
}
