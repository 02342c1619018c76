//! What running an action group produced, stored as the operation's output data in the JSON
//! shape of ievv_batchframework's `ActionGroupResult.to_dict`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The outcome of one action group run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionGroupResult {
    /// The group's name (the operation type).
    pub actiongroup_name: String,
    /// One entry per action, in the order they ran.
    pub results: Vec<ActionResult>,
}

impl ActionGroupResult {
    /// Whether any action failed.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.failed)
    }
}

/// The outcome of one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The action's name.
    pub action_name: String,
    /// Whether it returned an error or panicked.
    pub failed: bool,
    /// Why it failed; `null` when it succeeded.
    pub errordata: Option<ErrorData>,
    /// What it returned; `null` when it failed.
    pub success_output_data: Option<Value>,
}

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    /// The error itself: its message, or the JSON the action chose.
    pub data: Value,
    /// Where it came from: the error's chain of causes, or the panic's message.
    pub traceback: String,
}
