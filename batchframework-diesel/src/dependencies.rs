//! Settling a workflow's steps when the steps they depend on finish (see [`crate::workflow`]):
//! in the transaction that finishes those steps, each dependent's count of dependencies to
//! wait for goes down; a dependent with none left is released (made due now), and one that a
//! failed dependency stops is cancelled. Below [`completion`](crate::completion), which calls
//! it for every workflow whose steps a transaction finished, once it holds the workflow's
//! counts row.
//!
//! Why a dependent is released exactly once: the count is decremented by an `UPDATE` that
//! locks the step's row until the commit, so of two transactions finishing its last two
//! dependencies together, the second waits for the first and reads the count the first left;
//! only one of them brings it to zero.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryResult;
use serde_json::json;

use crate::backend::rows::StatusChange;
use crate::backend::{now, Storage, UtcDateTime};
use crate::status::{OperationResult, Status};

/// Counts the steps `finished` (id, result) into the steps that depend on them, releases the
/// dependents left with nothing to wait for, and cancels those a failed dependency stops (a
/// dependent that runs when dependencies fail waits for all of them).
pub(crate) fn settle<S: Storage + ?Sized>(
    storage: &mut S,
    finished: &[(i64, OperationResult)],
) -> QueryResult<Settled> {
    let ids: Vec<i64> = finished.iter().map(|&(id, _)| id).collect();
    let failed: BTreeSet<i64> = finished
        .iter()
        .filter(|(_, result)| *result == OperationResult::Failed)
        .map(|&(id, _)| id)
        .collect();
    // Per dependent: how many of its dependencies finished here, and which of those failed.
    let mut counted: BTreeMap<i64, (i32, Vec<i64>)> = BTreeMap::new();
    for edge in storage.dependents(&ids)? {
        let (finished, failed_here) = counted.entry(edge.operation_id).or_default();
        *finished += 1;
        if failed.contains(&edge.depends_on_id) {
            failed_here.push(edge.depends_on_id);
        }
    }
    if counted.is_empty() {
        return Ok(Settled::default());
    }
    // One UPDATE for every dependent counting the same numbers (usually all of them).
    let mut by_counts: BTreeMap<(i32, i32), Vec<i64>> = BTreeMap::new();
    for (&step, (finished, failed_here)) in &counted {
        let failed_here = i32::try_from(failed_here.len()).unwrap_or(i32::MAX);
        by_counts
            .entry((*finished, failed_here))
            .or_default()
            .push(step);
    }
    for ((finished, failed_here), steps) in &by_counts {
        storage.count_dependencies(steps, *finished, *failed_here)?;
    }
    let dependents: Vec<i64> = counted.keys().copied().collect();
    let mut released = Vec::new();
    let mut stopped = Vec::new();
    for step in storage.steps(&dependents)? {
        if step.failed_dependencies > 0 && !step.run_if_dependencies_fail {
            stopped.push(step.operation_id);
        } else if step.waiting_for <= 0 {
            released.push(step.operation_id);
        }
    }
    let released = storage.release_steps(&released)?;
    let mut cancelled = Vec::new();
    let at = UtcDateTime(now());
    for step in stopped {
        // A dependency that failed before this one cancelled it already: the guard finds it
        // finished and changes nothing.
        let because = counted
            .get(&step)
            .and_then(|(_, failed_here)| failed_here.first().copied());
        let output = json!({
            "cancelled": true,
            "reason": match because {
                Some(dependency) => format!("dependency {dependency} failed"),
                None => "a dependency failed".to_owned(),
            },
        })
        .to_string();
        let change = StatusChange {
            status: Status::Finished,
            result: Some(OperationResult::Failed),
            // It never ran; the table requires a start time for every finished operation.
            started_running_datetime: Some(at),
            finished_datetime: Some(at),
            output_data_json: Some(&output),
        };
        if storage.change_status(step, Status::Unprocessed, &change)? == 1 {
            cancelled.push(step);
        }
    }
    Ok(Settled {
        released,
        cancelled,
    })
}

/// What [`settle`] did.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// How many steps it released (made due now).
    pub(crate) released: usize,
    /// The steps it cancelled: finished children of the workflow in turn.
    pub(crate) cancelled: Vec<i64>,
}
