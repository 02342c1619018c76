//! What [`Registry::run`](super::Registry::run) takes and gives back: [`RunArgs`], the details of
//! the operation to record, and [`ExecutionInfo`], the operation and, when it ran inline, its
//! group's result.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ActionGroupResult;
use crate::backend::later_by;
use crate::context::ContextObject;
use crate::lifecycle::OperationDetails;
use crate::operation::BatchOperation;

/// What to run a group with: the operation's details that [`NewOperation`](crate::NewOperation)'s builder also
/// takes (and stores the same way), while the group decides its type, mode, queue and attempts.
#[derive(Debug, Default)]
pub struct RunArgs {
    pub(crate) details: OperationDetails,
}

impl RunArgs {
    /// No context object, no input, now.
    pub fn new() -> Self {
        Self::default()
    }

    /// The object the operation is about, as [`crate::NewOperation::context_object`].
    pub fn context_object(mut self, context: &impl ContextObject) -> Self {
        self.details.set_context_object(context);
        self
    }

    /// The application's key for the user who started it, as [`crate::NewOperation::started_by`].
    pub fn started_by(mut self, user_key: impl fmt::Display) -> Self {
        self.details.set_started_by(user_key);
        self
    }

    /// The input data, as JSON, as [`crate::NewOperation::input`]; a value that does not serialize is
    /// reported by [`Registry::run`](super::Registry::run) before anything is written.
    pub fn input<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.details.set_input(data);
        self
    }

    /// Not before this long from now (asynchronous groups).
    pub fn delay(self, delay: Duration) -> Self {
        self.run_at(later_by(Utc::now(), delay))
    }

    /// Not before this instant (asynchronous groups), as [`crate::NewOperation::run_after`].
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.details.set_run_after(at);
        self
    }

    /// Priority within the queue; higher runs first (default 0), as [`crate::NewOperation::priority`].
    pub fn priority(mut self, priority: i32) -> Self {
        self.details.set_priority(priority);
        self
    }
}

/// What `Registry::run` did.
#[derive(Debug, Clone)]
pub struct ExecutionInfo {
    /// The operation as stored: `finished` when run inline, `unprocessed` when queued.
    pub operation: BatchOperation,
    /// The group result when it ran inline; `None` when it was queued.
    pub result: Option<ActionGroupResult>,
}
