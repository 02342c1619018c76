//! How one attempt at an operation ends, decided from plain values: finished `successful` or
//! `failed`, released for a retry after an exponential backoff, or given up as "worker lost";
//! and the output it leaves, with the earlier attempts' results under `previous_attempts`.
//!
//! Nothing here touches the database or the clock: the serve loop passes in the operation's
//! attempt counts, the group's backoff, the group's result and `now`, and writes the
//! [`Decision`] (a finish through the keeper, a retry as a [`Release`](super::release::Release)).
//! That keeps the retry policy testable on its own, and the same on every backend.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::attempts::{split_output, PREVIOUS_ATTEMPTS};
use crate::backend::{later_by, UtcDateTime};
use crate::operation::BatchOperation;
use crate::registry::ActionGroupResult;
use crate::status::OperationResult;

use super::shared::Outcome;

/// The highest power of two the backoff is multiplied by: the delay stops doubling after the
/// 21st attempt (2^20 × backoff), instead of overflowing.
const MAX_BACKOFF_EXPONENT: u32 = 20;

/// How the worker ends one attempt at an operation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    /// Final: written by the keeper, with the others waiting.
    Finish {
        result: OperationResult,
        output: Value,
        outcome: Outcome,
    },
    /// Back to the queue for another attempt, after `run_after`.
    Retry {
        output: Value,
        run_after: UtcDateTime,
    },
    /// The run was cut short by a lost connection: no result, the attempt not counted.
    Interrupted,
}

/// What the decision needs to know of the claimed operation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt<'a> {
    /// The operation's `attempts` after the claim: this attempt's number, from 1.
    pub(super) attempts: i32,
    /// How many starts the operation may have.
    pub(super) max_attempts: i32,
    /// The output the previous attempt left (`""` when none).
    pub(super) earlier_output: &'a str,
}

impl<'a> Attempt<'a> {
    /// The attempt a worker has just claimed `operation` for.
    pub(super) fn of(operation: &'a BatchOperation) -> Self {
        Attempt {
            attempts: operation.attempts(),
            max_attempts: operation.max_attempts(),
            earlier_output: operation.output_data_json(),
        }
    }

    /// Before running: an operation claimed more often than it may be started was claimed again
    /// after its holders were lost (a lease expired each time), so it is failed as "worker
    /// lost" instead of run once more. `None`: run it.
    pub(super) fn worker_lost(&self) -> Option<Decision> {
        (self.attempts > self.max_attempts).then(|| Decision::Finish {
            result: OperationResult::Failed,
            output: json!({ "error": "worker lost", "attempts": self.attempts - 1 }),
            outcome: Outcome::Lost,
        })
    }

    /// After running the group: a success finishes, a failure is retried after
    /// [`retry_delay`] while attempts remain, and fails for good on the last one. The output is
    /// `result` with the earlier attempts kept (see [`with_previous_attempts`]).
    pub(super) fn after_run(
        &self,
        backoff: Duration,
        result: &ActionGroupResult,
        now: DateTime<Utc>,
    ) -> Decision {
        let output = with_previous_attempts(self.attempts, self.earlier_output, result);
        if !result.failed() {
            return Decision::Finish {
                result: OperationResult::Successful,
                output,
                outcome: Outcome::Succeeded,
            };
        }
        if self.attempts >= self.max_attempts {
            return Decision::Finish {
                result: OperationResult::Failed,
                output,
                outcome: Outcome::Failed,
            };
        }
        let delay = retry_delay(backoff, self.attempts);
        // A backoff beyond what a timestamp can hold waits "forever" (the latest storable
        // instant, after clamping), rather than overflowing or retrying at once.
        Decision::Retry {
            output,
            run_after: UtcDateTime(later_by(now, delay)).clamped(),
        }
    }
}

/// An operation whose type no action group of the registry has: failed at once, without
/// retries. A defensive fallback: claims take only the registry's types, and a worker's registry
/// does not change, so a claimed operation always has its group.
pub(super) fn no_group(operation_type: &str) -> Decision {
    let error = format!("no action group is registered as `{operation_type}`");
    Decision::Finish {
        result: OperationResult::Failed,
        output: json!({ "error": error }),
        outcome: Outcome::Failed,
    }
}

/// The wait before attempt `attempts + 1`, after attempt `attempts` failed: backoff,
/// 2·backoff, 4·backoff, ... doubling up to 2^20·backoff, saturating instead of overflowing.
pub(super) fn retry_delay(backoff: Duration, attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(MAX_BACKOFF_EXPONENT);
    backoff.saturating_mul(2u32.saturating_pow(exponent))
}

/// The output of attempt `attempts`: `result`, and from the second attempt on a
/// `previous_attempts` list, oldest first, of what the earlier attempts stored. The previous
/// attempt's output (`earlier_output`) brings its own list along, which is moved out of it and
/// extended, so the list stays flat. An earlier output that is missing, not JSON or not an
/// object counts as no earlier attempts (`[]`). The first attempt after an operator queued a
/// failed operation again ([`admin::retry`](crate::admin::retry)) finds the list alone in the
/// output and keeps it too.
pub(super) fn with_previous_attempts(
    attempts: i32,
    earlier_output: &str,
    result: &ActionGroupResult,
) -> Value {
    let mut output = serde_json::to_value(result).unwrap_or(Value::Null);
    let (mut previous, earlier) = split_output(earlier_output);
    if let Some(earlier) = earlier.filter(|_| attempts > 1) {
        previous.push(Value::Object(earlier));
    }
    if attempts > 1 || !previous.is_empty() {
        if let Value::Object(map) = &mut output {
            map.insert(PREVIOUS_ATTEMPTS.into(), Value::Array(previous));
        }
    }
    output
}

#[cfg(test)]
mod tests;
