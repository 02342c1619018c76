//! [`OperationDetails`]: what a caller says about an operation it asks for (context object,
//! `started_by`, input, priority, start time), stored the same way whichever builder took it,
//! [`NewOperation`](super::NewOperation) or [`RunArgs`](crate::registry::RunArgs).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::context::{ContextObject, ContextRef};

/// What a caller says about an operation it asks for, whichever builder it uses:
/// [`NewOperation`](crate::NewOperation) and [`RunArgs`](crate::registry::RunArgs) both hold one and set it through
/// these methods, so that the two builders store the same values the same way.
#[derive(Debug)]
pub(crate) struct OperationDetails {
    pub(super) context_object: Option<ContextRef>,
    pub(super) started_by: Option<String>,
    /// The serialized input (empty when none was given), or the serialization error, reported
    /// at insert.
    pub(super) input: std::result::Result<String, serde_json::Error>,
    pub(super) priority: i32,
    pub(super) run_after: Option<DateTime<Utc>>,
}

impl Default for OperationDetails {
    /// No context object, no `started_by`, no input data, priority 0, due now.
    fn default() -> Self {
        OperationDetails {
            context_object: None,
            started_by: None,
            input: Ok(String::new()),
            priority: 0,
            run_after: None,
        }
    }
}

impl OperationDetails {
    pub(crate) fn set_context_object(&mut self, context: &impl ContextObject) {
        self.context_object = Some(ContextRef::of(context));
    }

    pub(crate) fn set_started_by(&mut self, user_key: impl fmt::Display) {
        self.started_by = Some(user_key.to_string());
    }

    pub(crate) fn set_input<T: Serialize + ?Sized>(&mut self, data: &T) {
        self.input = serde_json::to_string(data);
    }

    pub(crate) fn set_priority(&mut self, priority: i32) {
        self.priority = priority;
    }

    pub(crate) fn set_run_after(&mut self, instant: DateTime<Utc>) {
        self.run_after = Some(instant);
    }

    /// Whether a start time was asked for.
    pub(crate) fn has_run_after(&self) -> bool {
        self.run_after.is_some()
    }

    /// Forgets the start time asked for (an operation that runs inline runs now).
    pub(crate) fn clear_run_after(&mut self) {
        self.run_after = None;
    }
}
