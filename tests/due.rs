//! Due work in claim order on every backend: immediate work, delayed work that has become due
//! and retries whose backoff has passed compete by priority, then age; work not yet due waits,
//! whatever its priority.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionContext, ActionError, ActionGroup};
use batchframework_diesel::registry::{Registry, RunArgs};
use batchframework_diesel::worker::{Worker, WorkerStats};
use batchframework_diesel::{BatchOperation, OperationFilter, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend, TestDatabase};
use chrono::Utc;
use diesel::connection::SimpleConnection;
use serde_json::Value;

/// `noop` does nothing; `flaky` fails its first attempt and then waits an hour to retry.
fn registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    let flaky = |ctx: &mut ActionContext<'_, B::Connection>| {
        if ctx.operation().attempts() == 1 {
            return Err(ActionError::msg("the first attempt fails"));
        }
        Ok(Value::Null)
    };
    Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("noop")
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(Value::Null))),
            )
            .group(
                ActionGroup::new("flaky")
                    .asynchronous()
                    .max_attempts(2)
                    .retry_backoff(Duration::from_secs(3600))
                    .action(action_fn("flaky", flaky)),
            )
            .build()
            .unwrap(),
    )
}

/// One operation at a time on one thread, so that the order of claims is the order of starts.
fn drain<B: TestBackend>(
    db: &TestDatabase,
    registry: &Arc<Registry<B::Connection>>,
) -> WorkerStats {
    Worker::new(Arc::clone(registry), B::pool(db, 2))
        .batch_size(1)
        .run_until_idle(1)
        .unwrap()
}

/// The ids of the operations started since `since`, in the order they started.
fn started_in_order<B: TestBackend>(
    conn: &mut B::Connection,
    since: chrono::DateTime<Utc>,
) -> Vec<i64> {
    let mut started: Vec<BatchOperation> = OperationFilter::new()
        .load(conn)
        .unwrap()
        .into_iter()
        .filter(|op| op.started_running_datetime().is_some_and(|at| at >= since))
        .collect();
    started.sort_by_key(|op| op.started_running_datetime());
    started.iter().map(BatchOperation::id).collect()
}

fn due_work_runs_by_priority_then_age_delayed_or_not<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    let registry = registry::<B>();
    let mut run = |args: RunArgs| {
        registry
            .run(&mut conn, "noop", args)
            .unwrap()
            .operation
            .id()
    };
    let due_since = Utc::now() - chrono::Duration::seconds(10);
    let low_immediate = run(RunArgs::new());
    let low_delayed = run(RunArgs::new().run_at(due_since));
    let high_immediate = run(RunArgs::new().priority(5));
    let higher_delayed = run(RunArgs::new().priority(9).run_at(due_since));
    let not_due = run(RunArgs::new()
        .priority(100)
        .delay(Duration::from_secs(3600)));

    let since = Utc::now();
    assert_eq!(drain::<B>(&db, &registry).succeeded, 4);
    assert_eq!(
        started_in_order::<B>(&mut conn, since),
        [higher_delayed, high_immediate, low_immediate, low_delayed]
    );
    let waiting = BatchOperation::find(&mut conn, not_due).unwrap();
    assert_eq!(waiting.status(), Status::Unprocessed);
}

fn a_retry_waits_out_its_backoff_then_competes_by_priority<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    let registry = registry::<B>();
    let flaky = registry
        .run(&mut conn, "flaky", RunArgs::new().priority(3))
        .unwrap()
        .operation
        .id();
    let first = drain::<B>(&db, &registry);
    assert_eq!((first.retried, first.succeeded), (1, 0));

    // In backoff: newer, lower-priority work runs, the retry waits.
    let early = registry
        .run(&mut conn, "noop", RunArgs::new())
        .unwrap()
        .operation
        .id();
    assert_eq!(drain::<B>(&db, &registry).succeeded, 1);
    let waiting = BatchOperation::find(&mut conn, flaky).unwrap();
    assert_eq!(
        (waiting.status(), waiting.attempts()),
        (Status::Unprocessed, 1)
    );
    assert_eq!(
        BatchOperation::find(&mut conn, early).unwrap().status(),
        Status::Finished
    );

    // Its backoff passes (moved into the past rather than waited for): it is due, and its
    // priority puts it before work queued after it was released.
    let a_second_ago = match B::NAME {
        "postgres" => "now() - interval '1 second'",
        "mysql" => "UTC_TIMESTAMP(6) - INTERVAL 1 SECOND",
        _ => "strftime('%Y-%m-%d %H:%M:%f000', 'now', '-1 seconds')",
    };
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET run_after = {a_second_ago} WHERE id = {flaky}"
    ))
    .unwrap();
    let late = registry
        .run(&mut conn, "noop", RunArgs::new())
        .unwrap()
        .operation
        .id();
    let since = Utc::now();
    assert_eq!(drain::<B>(&db, &registry).succeeded, 2);
    assert_eq!(started_in_order::<B>(&mut conn, since), [flaky, late]);
    let done = BatchOperation::find(&mut conn, flaky).unwrap();
    assert_eq!((done.status(), done.attempts()), (Status::Finished, 2));
}

backend_tests!(
    due_work_runs_by_priority_then_age_delayed_or_not,
    a_retry_waits_out_its_backoff_then_competes_by_priority,
);
