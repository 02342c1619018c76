//! What workers report through the [`metrics`](https://docs.rs/metrics) facade, with the
//! `metrics` feature: nothing is recorded (and nearly nothing done) until the application
//! installs a recorder, such as `metrics-exporter-prometheus`. Without the feature these
//! functions do nothing.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `batchframework_operations_claimed_total` | counter | `queue`, `type` | operations claimed (a lost worker's included) |
//! | `batchframework_operations_finished_total` | counter | `queue`, `type`, `result` | final results written (`successful`, `failed`) |
//! | `batchframework_operations_retried_total` | counter | `queue`, `type` | failed attempts released for a retry |
//! | `batchframework_operations_lost_total` | counter | `queue`, `type` | operations failed because their workers were lost too often |
//! | `batchframework_operations_fenced_total` | counter | `queue`, `type` | results not written: another worker had taken the operation over |
//! | `batchframework_operation_duration_seconds` | histogram | `queue`, `type` | how long running an operation's actions took |
//! | `batchframework_queue_depth` | gauge | `queue`, `state` (`due`, `delayed`, `running`) | the queue's operations, counted up to 10,000 (see [`Worker::queue_metrics_every`](super::Worker::queue_metrics_every)) |
//! | `batchframework_queue_lag_seconds` | gauge | `queue` | how long its longest-waiting due operation has waited (0 when none) |

use std::time::Duration;

use crate::operation::BatchOperation;
use crate::overview::QueueCounts;
use crate::status::OperationResult;

use super::shared::Outcome;

/// The queue and type of an operation, the labels of its metrics, kept with its result until
/// the keeper writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Labels {
    queue: String,
    operation_type: String,
}

impl Labels {
    pub(super) fn of(operation: &BatchOperation) -> Self {
        Labels {
            queue: operation.queue().to_owned(),
            operation_type: operation.operation_type().to_owned(),
        }
    }
}

/// An operation was claimed.
pub(super) fn claimed(operation: &BatchOperation) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "batchframework_operations_claimed_total",
        "queue" => operation.queue().to_owned(),
        "type" => operation.operation_type().to_owned(),
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = operation;
}

/// An operation's actions ran for `duration`.
pub(super) fn ran(operation: &BatchOperation, duration: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        "batchframework_operation_duration_seconds",
        "queue" => operation.queue().to_owned(),
        "type" => operation.operation_type().to_owned(),
    )
    .record(duration.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, duration);
}

/// An attempt ended as `outcome` and was written (or fenced).
pub(super) fn ended(labels: &Labels, outcome: Outcome, result: OperationResult) {
    #[cfg(feature = "metrics")]
    {
        let (queue, kind) = (labels.queue.clone(), labels.operation_type.clone());
        let name = match outcome {
            Outcome::Retried => "batchframework_operations_retried_total",
            Outcome::Fenced => "batchframework_operations_fenced_total",
            Outcome::Succeeded | Outcome::Failed | Outcome::Lost => {
                metrics::counter!(
                    "batchframework_operations_finished_total",
                    "queue" => queue.clone(),
                    "type" => kind.clone(),
                    "result" => result.as_str(),
                )
                .increment(1);
                if outcome != Outcome::Lost {
                    return;
                }
                "batchframework_operations_lost_total"
            }
        };
        metrics::counter!(name, "queue" => queue, "type" => kind).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (labels, outcome, result);
}

/// The depth and lag of a queue, as the keeper last counted them.
pub(super) fn queue_gauges(counts: &QueueCounts, lag: Option<chrono::Duration>) {
    #[cfg(feature = "metrics")]
    {
        for (state, count) in [
            ("due", counts.due),
            ("delayed", counts.delayed),
            ("running", counts.running),
        ] {
            metrics::gauge!(
                "batchframework_queue_depth",
                "queue" => counts.queue.clone(),
                "state" => state,
            )
            .set(count.value() as f64);
        }
        let lag = lag.map_or(0.0, |lag| lag.num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!("batchframework_queue_lag_seconds", "queue" => counts.queue.clone())
            .set(lag);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (counts, lag);
}
