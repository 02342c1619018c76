//! What workers report through the `metrics` facade (feature `metrics`), read back from a
//! debugging recorder: claims, finishes by result, retries, run durations, queue gauges.
//!
//! The recorder is global to the test process (nextest runs each test in a process of its
//! own; `cargo test` runs them as threads of one), so each test uses operation types and
//! queues of its own and reads only their series.

use std::sync::{Arc, OnceLock};

use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_tests::{backend_tests, migrated, TestBackend};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::{json, Value};

use crate::worker::eventually;

/// Held by each test of this file: a snapshot empties the recorder, so two of these tests in
/// one process (`cargo test`) must not take snapshots at the same time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's recorder, installed once.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other metrics recorder in the test process");
        snapshotter
    })
}

/// Everything recorded since the last snapshot (taking one empties the recorder).
type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

fn snapshot() -> Snapshot {
    snapshotter().snapshot().into_vec()
}

/// The value of the series `name` whose labels include every one of `labels`.
fn series<'s>(
    snapshot: &'s Snapshot,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'s DebugValue> {
    snapshot
        .iter()
        .find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && labels.iter().all(|(label, value)| {
                    key.labels()
                        .any(|l| l.key() == *label && l.value() == *value)
                })
        })
        .map(|(_, _, _, value)| value)
}

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match series(snapshot, name, labels) {
        Some(DebugValue::Counter(count)) => *count,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn registry<B: TestBackend>(prefix: &str) -> Arc<Registry<B::Connection>> {
    Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new(format!("{prefix}-ok"))
                    .asynchronous()
                    .action(action_fn("ok", |_| Ok(Value::Null))),
            )
            .group(
                ActionGroup::new(format!("{prefix}-fails"))
                    .asynchronous()
                    .max_attempts(2)
                    .retry_backoff(Duration::ZERO)
                    .action(action_fn("fail", |_| {
                        Err(ActionError::with_data(json!("nope"), "failed on purpose"))
                    })),
            )
            .build()
            .unwrap(),
    )
}

fn workers_count_claims_finishes_retries_and_durations<B: TestBackend>() {
    let _serial = one_at_a_time();
    snapshot();
    let prefix = format!("metrics-{}", B::NAME);
    let (ok, fails) = (format!("{prefix}-ok"), format!("{prefix}-fails"));
    let (db, mut conn) = migrated::<B>();
    let registry = registry::<B>(&prefix);
    for _ in 0..3 {
        registry.run(&mut conn, &ok, RunArgs::new()).unwrap();
    }
    registry.run(&mut conn, &fails, RunArgs::new()).unwrap();
    Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .run_until_idle(1)
        .unwrap();

    let taken = snapshot();
    let snapshot = &taken;
    let ok_labels = [("queue", "default"), ("type", ok.as_str())];
    let fails_labels = [("queue", "default"), ("type", fails.as_str())];
    assert_eq!(
        counter(
            snapshot,
            "batchframework_operations_claimed_total",
            &ok_labels
        ),
        3
    );
    assert_eq!(
        counter(
            snapshot,
            "batchframework_operations_claimed_total",
            &fails_labels
        ),
        2
    );
    let finished = "batchframework_operations_finished_total";
    assert_eq!(
        counter(
            snapshot,
            finished,
            &[ok_labels[1], ("result", "successful")]
        ),
        3
    );
    assert_eq!(
        counter(snapshot, finished, &[fails_labels[1], ("result", "failed")]),
        1
    );
    assert_eq!(
        counter(
            snapshot,
            "batchframework_operations_retried_total",
            &fails_labels
        ),
        1
    );
    match series(
        snapshot,
        "batchframework_operation_duration_seconds",
        &ok_labels,
    ) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 3),
        other => panic!("no duration histogram: {other:?}"),
    }
}

fn a_worker_reports_its_queues_depth_and_lag<B: TestBackend>() {
    let _serial = one_at_a_time();
    snapshot();
    let prefix = format!("gauges-{}", B::NAME);
    let queue = format!("{prefix}-queue");
    let (db, mut conn) = migrated::<B>();
    let registry = registry::<B>(&prefix);
    // Work of a type the worker does not run, on a queue it serves: it stays due, and the
    // queue lags.
    for _ in 0..2 {
        batchframework_diesel::BatchOperation::create_asynchronous("not-ours")
            .queue(queue.as_str())
            .insert(&mut conn)
            .unwrap();
    }
    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .queues(["default", queue.as_str()])
        .queue_metrics_every(Duration::from_secs(1))
        .start(1)
        .unwrap();
    let depth = |snapshot: &Snapshot, state: &str| {
        let labels = [("queue", queue.as_str()), ("state", state)];
        match series(snapshot, "batchframework_queue_depth", &labels) {
            Some(DebugValue::Gauge(depth)) => Some(depth.0),
            _ => None,
        }
    };
    // Each snapshot empties the recorder: the one that shows the report is kept.
    let mut reported = Snapshot::new();
    // The keeper sets the four gauges one after another: a snapshot may catch it in between
    // (and empties the recorder), so wait for one that holds all four.
    let lag_labels = [("queue", queue.as_str())];
    eventually("the keeper to report the queue's gauges", || {
        reported = snapshot();
        ["due", "delayed", "running"]
            .iter()
            .all(|state| depth(&reported, state).is_some())
            && series(&reported, "batchframework_queue_lag_seconds", &lag_labels).is_some()
    });
    handle.shutdown(Duration::from_secs(10)).unwrap();
    let states = ["due", "delayed", "running"].map(|state| depth(&reported, state));
    assert_eq!(states, [Some(2.0), Some(0.0), Some(0.0)]);
    match series(&reported, "batchframework_queue_lag_seconds", &lag_labels) {
        Some(DebugValue::Gauge(lag)) => assert!(lag.0 > 0.0, "{lag}"),
        other => panic!("no lag gauge: {other:?}"),
    }
}

backend_tests!(
    workers_count_claims_finishes_retries_and_durations,
    a_worker_reports_its_queues_depth_and_lag,
);
