//! Pausing and resuming queues.

use crate::backend::{now, BatchConnection, Storage};
use crate::error::Result;
use crate::lifecycle::check_length;

/// Pauses `queue`: workers claim nothing more from it until [`resume_queue`]; what is running
/// finishes, and so do operations a worker claimed before the pause in a batch and has not
/// started yet. A claim in flight when this is called commits first (workers lock their queues'
/// settings in share mode while they claim, and this waits for them), so no claim of the
/// queue's operations happens after it returns. A queue that does not exist yet can be paused.
///
/// # Errors
///
/// [`Error::ValueTooLong`](crate::Error::ValueTooLong) for a name over 255 characters; database
/// errors.
pub fn pause_queue<C: BatchConnection>(conn: &mut C, queue: &str) -> Result<()> {
    check_length("queue", queue)?;
    Ok(conn.storage().set_queue_paused(queue, true, now())?)
}

/// Resumes `queue`: workers claim from it again at their next claim (within their poll
/// interval). Resuming a queue that is not paused changes nothing.
///
/// # Errors
///
/// As for [`pause_queue`].
pub fn resume_queue<C: BatchConnection>(conn: &mut C, queue: &str) -> Result<()> {
    check_length("queue", queue)?;
    Ok(conn.storage().set_queue_paused(queue, false, now())?)
}

/// The paused queues, by name.
///
/// # Errors
///
/// Database errors.
pub fn paused_queues<C: BatchConnection>(conn: &mut C) -> Result<Vec<String>> {
    Ok(conn.storage().paused_queues()?)
}
