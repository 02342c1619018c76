//! The action engine: runs an action group's actions for one operation and collects their
//! results, whoever asked for the run.
//!
//! [`Registry::run`](crate::registry::Registry::run) calls it inline on the caller's connection,
//! a `worker::Worker` thread on a pooled one; both then record the [`ActionGroupResult`] it
//! returns on the operation. Actions run in order and each is guarded: an error or a panic is
//! recorded as that action's failure (a panic's message as its error data) and the later actions
//! still run, so one misbehaving action never takes its caller, or a worker thread, down with it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{ActionContext, ActionError, ActionGroup, ActionGroupResult, ActionResult};
use crate::backend::BatchConnection;
use crate::operation::BatchOperation;

/// Runs every action of `group` in order, each guarded against errors and panics.
pub(crate) fn run_actions<C: BatchConnection + 'static>(
    conn: &mut C,
    group: &ActionGroup<C>,
    operation: &BatchOperation,
) -> ActionGroupResult {
    let results = group
        .actions
        .iter()
        .map(|action| {
            let mut ctx = ActionContext::new(conn, operation);
            let outcome = catch_unwind(AssertUnwindSafe(|| action.execute(&mut ctx)))
                .unwrap_or_else(|panic| Err(panicked(panic.as_ref())));
            match outcome {
                Ok(output) => ActionResult {
                    action_name: action.name().to_owned(),
                    failed: false,
                    errordata: None,
                    success_output_data: Some(output),
                },
                Err(ActionError(errordata)) => ActionResult {
                    action_name: action.name().to_owned(),
                    failed: true,
                    errordata: Some(errordata),
                    success_output_data: None,
                },
            }
        })
        .collect();
    ActionGroupResult {
        actiongroup_name: group.name.clone(),
        results,
    }
}

/// A panic as an action error: its message as data.
fn panicked(panic: &(dyn Any + Send)) -> ActionError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
    ActionError::with_data(
        serde_json::Value::String(message.clone()),
        format!("the action panicked: {message}"),
    )
}
