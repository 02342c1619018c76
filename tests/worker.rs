//! Workers on every backend: exactly-once execution under concurrency, delays, retries, recovery
//! of a lost worker's operation, and fencing.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::{Worker, WorkerStats};
use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

/// The test action that records its run: a row in `executions` (see [`set_up`]), so a test
/// can count runs; its output is the operation's id.
pub(crate) fn record<B: TestBackend>(
    ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>,
) -> Result<Value, ActionError> {
    let id = ctx.operation().id();
    ctx.conn()
        .batch_execute(&format!(
            "INSERT INTO executions (operation_id) VALUES ({id})"
        ))
        .map_err(ActionError::from)?;
    Ok(json!(id))
}

/// Every run of `record` (and of `slow`, which then takes 300 ms) leaves a row in `executions`,
/// so the test can count them.
fn registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    let record = record::<B>;
    Arc::new(
        Registry::builder()
            .group(ActionGroup::new("record").asynchronous().action(action_fn("record", record)))
            .group(
                ActionGroup::new("always-fails")
                    .asynchronous()
                    .max_attempts(3)
                    .retry_backoff(Duration::ZERO)
                    .action(action_fn("fail", |_| {
                        Err(ActionError::with_data(json!("nope"), "failed on purpose"))
                    })),
            )
            .group(
                ActionGroup::new("second-time-lucky")
                    .asynchronous()
                    .max_attempts(2)
                    .retry_backoff(Duration::ZERO)
                    .action(action_fn(
                        "flaky",
                        |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                            let seen = json!({ "attempt": ctx.attempt(), "key": ctx.idempotency_key() });
                            if ctx.attempt() == 1 {
                                return Err(ActionError::with_data(seen, "the first try fails"));
                            }
                            Ok(seen)
                        },
                    )),
            )
            .group(
                ActionGroup::new("usurped").asynchronous().action(action_fn(
                    "steal",
                    |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    // Another worker takes the operation over while this one runs it.
                    let id = ctx.operation().id();
                    ctx.conn()
                        .batch_execute(&format!(
                            "UPDATE batchframework_batchoperation SET locked_by = 'usurper' WHERE id = {id}"
                        ))
                        .map_err(ActionError::from)?;
                    Ok(Value::Null)
                    },
                )),
            )
            .group(ActionGroup::new("slow").asynchronous().action(action_fn(
                "slow",
                move |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    record(ctx)?;
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(Value::Null)
                },
            )))
            .group(ActionGroup::new("panics-in-transaction").asynchronous().action(action_fn(
                "panic",
                |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    let id = ctx.operation().id();
                    ctx.conn()
                        .transaction::<(), diesel::result::Error, _>(|conn| {
                            conn.batch_execute(&format!(
                                "INSERT INTO executions (operation_id) VALUES ({id})"
                            ))?;
                            panic!("gave up inside a transaction");
                        })
                        .map_err(ActionError::from)?;
                    Ok(Value::Null)
                },
            )))
            .build()
            .unwrap(),
    )
}

/// A migrated database with an `executions` table the test actions record their runs in.
pub(crate) fn set_up<B: TestBackend>() -> (batchframework_tests::TestDatabase, B::Connection) {
    let (db, mut conn) = migrated::<B>();
    conn.batch_execute("CREATE TABLE executions (operation_id BIGINT NOT NULL)")
        .unwrap();
    (db, conn)
}

/// Queues one operation of `group`.
pub(crate) fn queue<B: TestBackend>(
    conn: &mut B::Connection,
    registry: &Registry<B::Connection>,
    group: &str,
) -> BatchOperation {
    registry.run(conn, group, RunArgs::new()).unwrap().operation
}

/// Queues `count` operations of `group` in one transaction.
pub(crate) fn queue_many<B: TestBackend>(
    conn: &mut B::Connection,
    registry: &Registry<B::Connection>,
    group: &str,
    count: usize,
) {
    conn.transaction::<_, batchframework_diesel::Error, _>(|conn| {
        for _ in 0..count {
            registry.run(conn, group, RunArgs::new())?;
        }
        Ok(())
    })
    .unwrap();
}

/// Runs what is due with one worker thread, on a pool just large enough for it and its keeper.
pub(crate) fn drain_with_one_thread<B: TestBackend>(
    db: &batchframework_tests::TestDatabase,
    registry: &Arc<Registry<B::Connection>>,
) -> WorkerStats {
    Worker::new(Arc::clone(registry), B::pool(db, 2))
        .run_until_idle(1)
        .unwrap()
}

/// What a worker did, without its wake-ups (which depend on timing) so it can be compared.
pub(crate) fn outcomes(stats: WorkerStats) -> WorkerStats {
    WorkerStats {
        wakeups: 0,
        ..stats
    }
}

/// How many runs were recorded, and for how many distinct operations.
pub(crate) fn executions<B: TestBackend>(conn: &mut B::Connection) -> (Option<i64>, Option<i64>) {
    let all = B::select_i64s(conn, "SELECT COUNT(*) AS v FROM executions")[0];
    let distinct = B::select_i64s(
        conn,
        "SELECT COUNT(DISTINCT operation_id) AS v FROM executions",
    )[0];
    (all, distinct)
}

/// 4 threads draining 2,000 operations: each runs exactly once, and all finish.
fn every_operation_runs_exactly_once_with_4_threads<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    queue_many::<B>(&mut conn, &registry, "record", 2_000);
    let stats = Worker::new(Arc::clone(&registry), B::pool(&db, 6))
        .batch_size(8)
        .run_until_idle(4)
        .unwrap();
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            succeeded: 2_000,
            ..WorkerStats::default()
        }
    );
    assert_eq!(executions::<B>(&mut conn), (Some(2_000), Some(2_000)));
    let finished = OperationFilter::new()
        .status(Status::Finished)
        .load(&mut conn)
        .unwrap();
    assert_eq!(finished.len(), 2_000);
    assert!(finished
        .iter()
        .all(|op| op.result() == OperationResult::Successful && op.attempts() == 1));
}

fn delayed_operations_never_start_early<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let later = registry
        .run(
            &mut conn,
            "record",
            RunArgs::new().delay(Duration::from_secs(3600)),
        )
        .unwrap()
        .operation;
    let due = registry
        .run(
            &mut conn,
            "record",
            RunArgs::new().run_at(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .unwrap()
        .operation;
    let stats = Worker::new(registry, B::pool(&db, 3))
        .run_until_idle(2)
        .unwrap();
    assert_eq!(stats.succeeded, 1);
    assert_eq!(
        BatchOperation::find(&mut conn, later.id())
            .unwrap()
            .status(),
        Status::Unprocessed
    );
    assert_eq!(
        BatchOperation::find(&mut conn, due.id()).unwrap().status(),
        Status::Finished
    );
}

fn retries_stop_at_max_attempts_and_keep_every_error<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let op = queue::<B>(&mut conn, &registry, "always-fails");
    let stats = drain_with_one_thread::<B>(&db, &registry);
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            retried: 2,
            failed: 1,
            ..WorkerStats::default()
        }
    );
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Failed)
    );
    assert_eq!(stored.attempts(), 3);
    let output: Value = stored.output_data().unwrap().unwrap();
    assert_eq!(output["results"][0]["errordata"]["data"], json!("nope"));
    assert_eq!(
        output["previous_attempts"].as_array().map(Vec::len),
        Some(2)
    );
}

/// Each run sees its attempt number, and the same idempotency key as the runs before it.
fn each_run_sees_its_attempt_and_the_operations_idempotency_key<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let op = queue::<B>(&mut conn, &registry, "second-time-lucky");
    let stats = drain_with_one_thread::<B>(&db, &registry);
    assert_eq!((stats.retried, stats.succeeded), (1, 1));
    let output: Value = BatchOperation::find(&mut conn, op.id())
        .unwrap()
        .output_data()
        .unwrap()
        .unwrap();
    let key = format!("batchframework-operation-{}", op.id());
    assert_eq!(
        output["previous_attempts"][0]["results"][0]["errordata"]["data"],
        json!({ "attempt": 1, "key": key })
    );
    assert_eq!(
        output["results"][0]["success_output_data"],
        json!({ "attempt": 2, "key": key })
    );
}

/// An operation whose worker died (no heartbeat for longer than the lease) is run again, or
/// failed as "worker lost" once its attempts are spent; it never stays `running`.
fn a_lost_workers_operation_is_recovered<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry: Arc<Registry<B::Connection>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("twice")
                    .asynchronous()
                    .max_attempts(2)
                    .action(action_fn("ok", |_| Ok(json!("done")))),
            )
            .group(
                ActionGroup::new("once")
                    .asynchronous()
                    .action(action_fn("ok", |_| Ok(Value::Null))),
            )
            .build()
            .unwrap(),
    );
    let twice = queue::<B>(&mut conn, &registry, "twice");
    let once = queue::<B>(&mut conn, &registry, "once");
    // Both were claimed by a worker that then died an hour ago.
    conn.batch_execute(
        "UPDATE batchframework_batchoperation SET status = 'running', attempts = 1, \
         started_running_datetime = '2000-01-01 00:00:00', locked_by = 'dead', \
         heartbeat_datetime = '2000-01-01 00:00:00'",
    )
    .unwrap();
    let worker = Worker::new(registry, B::pool(&db, 2))
        .name("rescuer")
        .lease(Duration::from_secs(5));
    let stats = worker.run_until_idle(1).unwrap();
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            succeeded: 1,
            lost: 1,
            ..WorkerStats::default()
        }
    );
    let twice = BatchOperation::find(&mut conn, twice.id()).unwrap();
    assert_eq!(
        (twice.result(), twice.attempts(), twice.locked_by()),
        (OperationResult::Successful, 2, Some("rescuer"))
    );
    let once = BatchOperation::find(&mut conn, once.id()).unwrap();
    assert_eq!(
        (once.status(), once.result()),
        (Status::Finished, OperationResult::Failed)
    );
    assert_eq!(
        once.output_data::<Value>().unwrap().unwrap()["error"],
        json!("worker lost")
    );
}

/// A worker that lost its operation to another cannot write its result over the new holder's.
fn a_fenced_worker_cannot_finish<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let op = queue::<B>(&mut conn, &registry, "usurped");
    let stats = drain_with_one_thread::<B>(&db, &registry);
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            fenced: 1,
            ..WorkerStats::default()
        }
    );
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(
        (stored.status(), stored.locked_by()),
        (Status::Running, Some("usurper"))
    );
    assert_eq!(stored.output_data_json(), "");
}

/// Cancelling pending work while a worker claims it, 200 times: each operation is either removed
/// and never run, or run once and not removed; never both, never neither.
fn cancel_racing_a_claim_never_both_removes_and_runs<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    for i in 0..200 {
        let post = ContextRef::new("posts", i);
        registry
            .run(&mut conn, "record", RunArgs::new().context_object(&post))
            .unwrap();
    }
    let worker = Worker::new(Arc::clone(&registry), B::pool(&db, 3)).batch_size(1);
    let (stats, removed) = std::thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let mut conn = B::connect(&db);
            (0..200)
                .map(|i| {
                    OperationFilter::new()
                        .context_object(&ContextRef::new("posts", i))
                        .remove_pending(&mut conn)
                        .unwrap()
                })
                .sum::<usize>()
        });
        let stats = worker.run_until_idle(2).unwrap();
        (stats, canceller.join().unwrap())
    });
    let (ran, distinct) = executions::<B>(&mut conn);
    assert_eq!(ran, distinct, "nothing ran twice");
    let ran = ran.unwrap_or(0) as usize;
    assert_eq!(stats.succeeded, ran);
    assert_eq!(ran + removed, 200, "{ran} ran, {removed} removed");
    let left = OperationFilter::new().load(&mut conn).unwrap();
    assert_eq!(left.len(), ran, "exactly the ones that ran are still there");
    assert!(left.iter().all(|op| op.status() == Status::Finished));
    let unrun = B::select_i64s(
        &mut conn,
        "SELECT COUNT(*) AS v FROM batchframework_batchoperation o \
         WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.operation_id = o.id)",
    );
    assert_eq!(unrun, [Some(0)], "every operation left was run");
}

/// Waits (bounded) until `done` holds, polling; panics with `what` if it never does.
pub(crate) fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A started worker picks up work queued after it started, and shuts down on request.
fn a_started_worker_runs_new_work_until_shut_down<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 3))
        .poll_interval(Duration::from_millis(20))
        .start(2)
        .unwrap();
    for _ in 0..20 {
        registry.run(&mut conn, "record", RunArgs::new()).unwrap();
    }
    eventually("20 operations to run", || handle.stats().succeeded == 20);
    assert!(!handle.is_stopping());
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(stats.succeeded, 20);
    assert_eq!(executions::<B>(&mut conn), (Some(20), Some(20)));
}

/// On shutdown the running action finishes, and operations claimed but not started go back to
/// the queue as if never claimed.
fn shutdown_finishes_the_running_action_and_releases_the_rest<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    for _ in 0..5 {
        registry.run(&mut conn, "slow", RunArgs::new()).unwrap();
    }
    let handle = Worker::new(registry, B::pool(&db, 3))
        .batch_size(5)
        .poll_interval(Duration::from_millis(20))
        .start(1)
        .unwrap();
    let mut watcher = B::connect(&db);
    eventually("the first action to start", || {
        executions::<B>(&mut watcher).0.unwrap_or(0) >= 1
    });
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    let ran = executions::<B>(&mut conn).0.unwrap_or(0) as usize;
    assert!((1..5).contains(&ran), "{ran} ran");
    assert_eq!(stats.succeeded, ran);
    let all = OperationFilter::new().load(&mut conn).unwrap();
    let finished = all
        .iter()
        .filter(|op| op.status() == Status::Finished)
        .count();
    let released: Vec<_> = all
        .iter()
        .filter(|op| op.status() == Status::Unprocessed)
        .collect();
    assert_eq!((finished, released.len()), (ran, 5 - ran));
    assert!(released
        .iter()
        .all(|op| op.attempts() == 0 && op.locked_by().is_none()));
}

/// Results are written in groups, one UPDATE per group with a CASE per column: each operation
/// gets its own output, and a member of the group that another worker took over is left alone.
fn each_result_of_a_group_lands_on_its_own_operation<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let mut recorded = Vec::new();
    let mut usurped = None;
    for i in 0..12 {
        if i == 5 {
            usurped = Some(
                registry
                    .run(&mut conn, "usurped", RunArgs::new())
                    .unwrap()
                    .operation,
            );
        } else {
            recorded.push(
                registry
                    .run(&mut conn, "record", RunArgs::new())
                    .unwrap()
                    .operation,
            );
        }
    }
    let stats = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .batch_size(12)
        .run_until_idle(1)
        .unwrap();
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            succeeded: 11,
            fenced: 1,
            ..WorkerStats::default()
        }
    );
    for op in &recorded {
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!(
            (stored.status(), stored.result(), stored.attempts()),
            (Status::Finished, OperationResult::Successful, 1)
        );
        assert!(stored.finished_datetime().unwrap() >= stored.started_running_datetime().unwrap());
        let output: Value = stored.output_data().unwrap().unwrap();
        assert_eq!(output["results"][0]["success_output_data"], json!(op.id()));
    }
    let usurped = BatchOperation::find(&mut conn, usurped.unwrap().id()).unwrap();
    assert_eq!(
        (
            usurped.status(),
            usurped.locked_by(),
            usurped.output_data_json()
        ),
        (Status::Running, Some("usurper"), "")
    );
}

/// A pool without a connection for every worker thread and the keeper is refused up front,
/// with what to do, instead of threads waiting for each other's connections.
fn a_pool_too_small_for_the_worker_is_refused<B: TestBackend>() {
    let (db, _conn) = set_up::<B>();
    let worker = Worker::new(registry::<B>(), B::pool(&db, 2));
    let error = worker.run_until_idle(2).unwrap_err();
    assert!(
        matches!(error, batchframework_diesel::Error::PoolTooSmall { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("needs 3 connections"), "{error}");
    assert!(error.to_string().contains("max_size"), "{error}");
    let error = worker.start(4).unwrap_err();
    assert!(error.to_string().contains("needs 5 connections"), "{error}");
}

/// An action that panics inside its own transaction leaves it open (Diesel rolls back only on
/// an `Err`): the worker rolls it back, so the action's writes vanish, the panic is recorded,
/// and the thread's next claims and results are not trapped in the dead transaction.
fn a_panic_inside_an_actions_transaction_is_rolled_back<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let panicked = queue::<B>(&mut conn, &registry, "panics-in-transaction");
    for _ in 0..3 {
        registry.run(&mut conn, "record", RunArgs::new()).unwrap();
    }
    let stats = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .batch_size(2)
        .run_until_idle(1)
        .unwrap();
    assert_eq!(
        outcomes(stats),
        WorkerStats {
            succeeded: 3,
            failed: 1,
            ..WorkerStats::default()
        }
    );
    let stored = BatchOperation::find(&mut conn, panicked.id()).unwrap();
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Failed)
    );
    assert!(
        stored
            .output_data_json()
            .contains("gave up inside a transaction"),
        "{}",
        stored.output_data_json()
    );
    assert_eq!(
        B::select_i64s(
            &mut conn,
            &format!(
                "SELECT COUNT(*) AS v FROM executions WHERE operation_id = {}",
                panicked.id()
            )
        ),
        [Some(0)],
        "the panicking action's insert was rolled back"
    );
    assert_eq!(executions::<B>(&mut conn), (Some(3), Some(3)));
}

/// Large outputs: results are written in chunks that fit the server's statement size (MySQL's
/// `max_allowed_packet`, 16 MiB by default), and one that fits in no statement is recorded as a
/// failure saying so, on MySQL/MariaDB only; the worker goes on either way.
fn large_results_are_chunked_and_one_too_large_for_the_server_fails_visibly<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry: Arc<Registry<B::Connection>> = Arc::new(
        Registry::builder()
            .group(ActionGroup::new("large").asynchronous().action(action_fn(
                "large",
                |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    let megabytes: usize = ctx.input().map_err(ActionError::from)?.unwrap_or(0);
                    Ok(json!("x".repeat(megabytes << 20)))
                },
            )))
            .build()
            .unwrap(),
    );
    let mut ops = Vec::new();
    for megabytes in [5, 5, 5, 5, 20] {
        let args = RunArgs::new().input(&megabytes);
        ops.push(registry.run(&mut conn, "large", args).unwrap().operation);
    }
    let stats = drain_with_one_thread::<B>(&db, &registry);
    let mysql = B::NAME == "mysql";
    assert_eq!(
        (stats.succeeded, stats.failed),
        if mysql { (4, 1) } else { (5, 0) }
    );
    for op in &ops[..4] {
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!(stored.result(), OperationResult::Successful);
        assert!(stored.output_data_json().len() > 5 << 20);
    }
    let too_large = BatchOperation::find(&mut conn, ops[4].id()).unwrap();
    assert_eq!(too_large.status(), Status::Finished);
    if mysql {
        assert_eq!(too_large.result(), OperationResult::Failed);
        assert!(
            too_large.output_data_json().contains("max_allowed_packet"),
            "{}",
            too_large.output_data_json()
        );
    } else {
        assert_eq!(too_large.result(), OperationResult::Successful);
    }
}

/// An action still running when the shutdown's timeout runs out is left to finish on its own,
/// and the worker's keeper still writes its result.
fn an_action_outliving_the_shutdown_timeout_still_gets_its_result<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let op = queue::<B>(&mut conn, &registry, "slow");
    let handle = Worker::new(registry, B::pool(&db, 2))
        .poll_interval(Duration::from_millis(20))
        .start(1)
        .unwrap();
    let mut watcher = B::connect(&db);
    eventually("the action to start", || {
        executions::<B>(&mut watcher).0.unwrap_or(0) >= 1
    });
    handle.shutdown(Duration::ZERO).unwrap();
    eventually("the result to be written", || {
        let stored = BatchOperation::find(&mut watcher, op.id()).unwrap();
        (stored.status(), stored.result()) == (Status::Finished, OperationResult::Successful)
    });
    assert_eq!(executions::<B>(&mut conn), (Some(1), Some(1)));
}

backend_tests!(
    an_action_outliving_the_shutdown_timeout_still_gets_its_result,
    large_results_are_chunked_and_one_too_large_for_the_server_fails_visibly,
    a_panic_inside_an_actions_transaction_is_rolled_back,
    each_result_of_a_group_lands_on_its_own_operation,
    a_pool_too_small_for_the_worker_is_refused,
    a_started_worker_runs_new_work_until_shut_down,
    shutdown_finishes_the_running_action_and_releases_the_rest,
    cancel_racing_a_claim_never_both_removes_and_runs,
    every_operation_runs_exactly_once_with_4_threads,
    delayed_operations_never_start_early,
    retries_stop_at_max_attempts_and_keep_every_error,
    each_run_sees_its_attempt_and_the_operations_idempotency_key,
    a_lost_workers_operation_is_recovered,
    a_fenced_worker_cannot_finish,
);
