//! `pause` and `resume`: whether workers claim a queue's operations.

use batchframework_diesel::{admin, BatchConnection};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{json, Format};

/// `{"queue", "paused"}`.
#[derive(Serialize)]
struct QueueState<'a> {
    queue: &'a str,
    paused: bool,
}

/// Pauses (`paused`) or resumes `queue`.
pub(super) fn pause<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    queue: &str,
    paused: bool,
) -> Result<String, CliError> {
    if paused {
        admin::pause_queue(conn, queue)?;
    } else {
        admin::resume_queue(conn, queue)?;
    }
    if format.json {
        return json(&QueueState { queue, paused });
    }
    Ok(if paused {
        format!(
            "paused queue `{queue}`: workers start none of its operations until \
             `batchframework resume {queue}` (running ones finish)\n"
        )
    } else {
        format!("resumed queue `{queue}`: workers claim its operations again\n")
    })
}
