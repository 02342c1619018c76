//! Batches: children drained by several threads and processes with exact counts and one
//! callback, a worker killed mid-batch (and mid-workflow), the last two children finished at
//! the same instant, nested batches, cancelling, an empty batch, waiting for a result.
//!
//! The process tests re-run this test binary on the ignored test `batches::child_worker`, told
//! what to do through environment variables, as `processes.rs` does.

use std::process::{Child as Process, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use batchframework_diesel::admin::{self, Cancelled};
use batchframework_diesel::batch::{cancel_batch, BatchSummary, Child};
use batchframework_diesel::registry::{ActionContext, ActionError, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::workflow::Step;
use batchframework_diesel::{BatchOperation, Error, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend, TestDatabase};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

/// The group of the children: records its run in `executions` when its input says
/// `{"record": true}`; fails on every attempt when it says `{"fail": true}` (so it is retried
/// once, then fails for good); sleeps `sleep_ms`.
const CHILD: &str = "child";
/// The callbacks: record their run.
const ON_SUCCESS: &str = "batch-succeeded";
const ON_COMPLETE: &str = "batch-completed";
/// Children that meet at a rendezvous of two before they finish.
const PAIRED: &str = "paired";

/// Records a run of operation `id` in the test's `executions` table.
pub(crate) fn record<C: SimpleConnection>(conn: &mut C, id: i64) -> Result<(), ActionError> {
    conn.batch_execute(&format!(
        "INSERT INTO executions (operation_id) VALUES ({id})"
    ))
    .map_err(ActionError::from)
}

/// Two threads meet here, or give up after a few seconds (the test then still checks its
/// counts).
#[derive(Default)]
pub(crate) struct Rendezvous {
    arrived: Mutex<u64>,
    met: Condvar,
}

impl Rendezvous {
    pub(crate) fn meet(&self) {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        let pair = (*arrived).div_ceil(2);
        self.met.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while *arrived < pair * 2 && Instant::now() < deadline {
            arrived = self
                .met
                .wait_timeout(arrived, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }
}

fn registry<B: TestBackend>(rendezvous: Arc<Rendezvous>) -> Arc<Registry<B::Connection>> {
    Arc::new(
        Registry::<B::Connection>::builder()
            .group_with(CHILD, |group| {
                group
                    .asynchronous()
                    .max_attempts(2)
                    .retry_backoff(Duration::ZERO)
                    .action_fn("run", |ctx: &mut ActionContext<'_, B::Connection>| {
                        let id = ctx.operation().id();
                        let input: Value = ctx.operation().input_data()?.unwrap_or(Value::Null);
                        if input["record"] == json!(true) {
                            record(ctx.conn(), id)?;
                        }
                        if let Some(ms) = input["sleep_ms"].as_u64() {
                            std::thread::sleep(Duration::from_millis(ms));
                        }
                        if input["fail"] == json!(true) {
                            return Err(ActionError::msg("told to fail"));
                        }
                        Ok(json!(id))
                    })
            })
            .group_with(PAIRED, |group| {
                group.asynchronous().action_fn(
                    "meet",
                    move |ctx: &mut ActionContext<'_, B::Connection>| {
                        rendezvous.meet();
                        Ok(json!(ctx.operation().id()))
                    },
                )
            })
            .group_with(ON_SUCCESS, |group| {
                group.asynchronous().action_fn(
                    "record",
                    |ctx: &mut ActionContext<'_, B::Connection>| {
                        let id = ctx.operation().id();
                        record(ctx.conn(), id)?;
                        Ok(Value::Null)
                    },
                )
            })
            .group_with(ON_COMPLETE, |group| {
                group.asynchronous().action_fn(
                    "record",
                    |ctx: &mut ActionContext<'_, B::Connection>| {
                        let id = ctx.operation().id();
                        record(ctx.conn(), id)?;
                        Ok(Value::Null)
                    },
                )
            })
            .build()
            .unwrap(),
    )
}

/// `count` children, every `fail_every`-th failing for good (0: none), each sleeping `sleep_ms`
/// and recording its runs.
fn children(count: usize, fail_every: usize, sleep_ms: u64) -> impl Iterator<Item = Child> {
    (0..count).map(move |i| {
        let fail = fail_every != 0 && i % fail_every == 0;
        let input = json!({ "fail": fail, "sleep_ms": sleep_ms, "record": true });
        Child::new(CHILD, RunArgs::new().input(&input))
    })
}

/// `count` children that record nothing, every `fail_every`-th failing for good (0: none): how
/// often each ran shows in its `attempts`.
fn quiet_children(count: usize, fail_every: usize) -> impl Iterator<Item = Child> {
    (0..count).map(move |i| {
        let fail = fail_every != 0 && i % fail_every == 0;
        Child::new(CHILD, RunArgs::new().input(&json!({ "fail": fail })))
    })
}

/// The children of `parent` that finished with `result` after `attempts` runs.
fn children_ended<B: TestBackend>(
    conn: &mut B::Connection,
    parent: i64,
    result: &str,
    attempts: i32,
) -> i64 {
    B::select_i64s(
        conn,
        &format!(
            "SELECT COUNT(*) AS v FROM batchframework_batchoperation WHERE parent_id = {parent} \
             AND status = 'finished' AND result = '{result}' AND attempts = {attempts}"
        ),
    )[0]
    .unwrap_or(0)
}

/// How many runs of operations of `operation_type` were recorded, and of how many distinct ones.
fn runs_of<B: TestBackend>(conn: &mut B::Connection, operation_type: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT COUNT(*) AS v FROM executions e JOIN batchframework_batchoperation o \
         ON o.id = e.operation_id WHERE o.operationtype = '{operation_type}' \
         UNION ALL \
         SELECT COUNT(DISTINCT e.operation_id) AS v FROM executions e \
         JOIN batchframework_batchoperation o \
         ON o.id = e.operation_id WHERE o.operationtype = '{operation_type}'"
    );
    let counts = B::select_i64s(conn, &sql);
    (counts[0].unwrap_or(0), counts[1].unwrap_or(0))
}

/// The command that re-runs this test binary as a worker process on `db`.
fn spawn_worker(backend: &str, db: &TestDatabase, threads: usize, lease_ms: u64) -> Process {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "batches::child_worker",
            "--ignored",
            "--nocapture",
        ])
        .env("BF_BATCH_BACKEND", backend)
        .env("BF_BATCH_URL", &db.url)
        .env("BF_BATCH_THREADS", threads.to_string())
        .env("BF_BATCH_LEASE_MS", lease_ms.to_string())
        .spawn()
        .unwrap()
}

/// Not a test of its own: the worker process the tests below start.
#[test]
#[ignore = "run as a child process by the batch tests"]
fn child_worker() {
    match std::env::var("BF_BATCH_BACKEND").unwrap().as_str() {
        #[cfg(feature = "postgres")]
        "postgres" => child::<batchframework_tests::Postgres>(),
        #[cfg(feature = "mysql")]
        "mysql" => child::<batchframework_tests::Mysql>(),
        #[cfg(feature = "sqlite")]
        "sqlite" => child::<batchframework_tests::Sqlite>(),
        other => panic!("unknown backend {other}"),
    }
}

fn child<B: TestBackend>() {
    let db = TestDatabase::existing(std::env::var("BF_BATCH_URL").unwrap());
    let threads: usize = std::env::var("BF_BATCH_THREADS").unwrap().parse().unwrap();
    let lease: u64 = std::env::var("BF_BATCH_LEASE_MS").unwrap().parse().unwrap();
    let pool_size = u32::try_from(threads).unwrap() + 2;
    let stats = Worker::new(registry::<B>(Arc::default()), B::pool(&db, pool_size))
        .lease(Duration::from_millis(lease))
        .batch_size(16)
        .run_until_idle(threads)
        .unwrap();
    println!("batch child done: {stats:?}");
}

/// A migrated throwaway database with the `executions` table the tests' actions record in.
pub(crate) fn set_up<B: TestBackend>() -> (TestDatabase, B::Connection) {
    let (db, mut conn) = batchframework_tests::migrated::<B>();
    conn.batch_execute("CREATE TABLE executions (operation_id BIGINT NOT NULL)")
        .unwrap();
    (db, conn)
}

/// Runs what is due in this process: one `run_until_idle`, which runs the callbacks of the
/// batches it completes too.
fn drain<B: TestBackend>(db: &TestDatabase, registry: &Arc<Registry<B::Connection>>) {
    Worker::new(Arc::clone(registry), B::pool(db, 3))
        .run_until_idle(1)
        .unwrap();
}

/// 10,000 children drained by 4 threads in each of 2 worker processes (on SQLite, which lets one
/// writer in at a time, by one worker of 4 threads in this process), every `fail_every`-th
/// failing for good
/// after a retry: every child runs to its end once per attempt, the counts are exact, and the
/// callbacks run once each (`on_success` never when a child failed).
fn drain_10_000_children<B: TestBackend>(fail_every: usize) {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let parent = registry
        .batch("import")
        .on_success(ON_SUCCESS)
        .on_complete(ON_COMPLETE)
        .enqueue(&mut conn, quiet_children(10_000, fail_every))
        .unwrap();
    if B::NAME == "sqlite" {
        Worker::new(Arc::clone(&registry), B::pool(&db, 6))
            .batch_size(16)
            .run_until_idle(4)
            .unwrap();
    } else {
        let workers = [
            spawn_worker(B::NAME, &db, 4, 30_000),
            spawn_worker(B::NAME, &db, 4, 30_000),
        ];
        for mut worker in workers {
            assert!(worker.wait().unwrap().success(), "a worker process failed");
        }
    }
    drain::<B>(&db, &registry);

    let failed = if fail_every == 0 {
        0
    } else {
        10_000_usize.div_ceil(fail_every) as i64
    };
    // Each child ran once, a failing one twice (max_attempts 2): a claim counts an attempt,
    // and a child finishes once.
    let id = parent.id();
    assert_eq!(
        children_ended::<B>(&mut conn, id, "successful", 1),
        10_000 - failed
    );
    assert_eq!(children_ended::<B>(&mut conn, id, "failed", 2), failed);
    let progress = BatchOperation::batch_progress(&mut conn, parent.id()).unwrap();
    assert_eq!(
        (progress.total, progress.succeeded, progress.failed),
        (10_000, 10_000 - failed, failed)
    );
    let mut parent = parent;
    parent.reload(&mut conn).unwrap();
    assert_eq!(parent.status(), Status::Finished);
    let summary: BatchSummary = parent.output_data().unwrap().unwrap();
    assert_eq!(summary.failed_ids.len() as i64, failed);
    let expected = if failed == 0 {
        OperationResult::Successful
    } else {
        OperationResult::Failed
    };
    assert_eq!(parent.result(), expected);
    let on_success = if failed == 0 { (1, 1) } else { (0, 0) };
    assert_eq!(runs_of::<B>(&mut conn, ON_SUCCESS), on_success);
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), (1, 1));
    // The callbacks are about the parent and carry the summary.
    let callback = &OperationFilter::new()
        .operation_type(ON_COMPLETE)
        .load(&mut conn)
        .unwrap()[0];
    assert_eq!(
        callback.context_object_id(),
        Some(parent.id().to_string().as_str())
    );
    assert_eq!(
        callback.input_data::<BatchSummary>().unwrap(),
        Some(summary)
    );
}

fn ten_thousand_children_in_two_workers_complete_once<B: TestBackend>() {
    drain_10_000_children::<B>(0);
}

fn with_5_percent_failing_on_complete_runs_once_and_on_success_never<B: TestBackend>() {
    drain_10_000_children::<B>(20);
}

/// Starts a worker process (2 threads, a lease of 1 s) on `db`, kills it with SIGKILL once 50
/// runs of `CHILD` are recorded (its claimed operations stay `running`), checks that the batch
/// `parent` is not complete yet, then runs a rescuer in this process until the parent has
/// finished, and what that enqueued.
fn kill_a_worker_midway_then_rescue<B: TestBackend>(
    db: &TestDatabase,
    conn: &mut B::Connection,
    registry: &Arc<Registry<B::Connection>>,
    parent: i64,
) {
    let mut process = spawn_worker(B::NAME, db, 2, 1_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs_of::<B>(conn, CHILD).0 < 50 {
        assert!(
            Instant::now() < deadline,
            "the worker process never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    process.kill().unwrap();
    process.wait().unwrap();
    let progress = BatchOperation::batch_progress(conn, parent).unwrap();
    assert!(!progress.is_complete(), "killed too late: {progress:?}");

    let rescuer = Worker::new(Arc::clone(registry), B::pool(db, 4))
        .name("rescuer")
        .lease(Duration::from_millis(1_000));
    let deadline = Instant::now() + Duration::from_secs(60);
    while BatchOperation::find(conn, parent).unwrap().status() != Status::Finished {
        assert!(Instant::now() < deadline, "the batch never completed");
        rescuer.run_until_idle(2).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    drain::<B>(db, registry);
}

/// A worker process killed with SIGKILL in the middle of a batch: another worker takes its
/// children over after the lease, the batch completes, and its callback runs once.
fn a_worker_killed_mid_batch_still_completes_it_once<B: TestBackend>() {
    if B::NAME == "sqlite" {
        return; // the process tests run on the servers
    }
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let parent = registry
        .batch("import")
        .on_complete(ON_COMPLETE)
        .enqueue(&mut conn, children(300, 0, 10))
        .unwrap();
    kill_a_worker_midway_then_rescue::<B>(&db, &mut conn, &registry, parent.id());
    let progress = BatchOperation::batch_progress(&mut conn, parent.id()).unwrap();
    assert_eq!((progress.succeeded, progress.failed), (300, 0));
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), (1, 1));
    // Each child finished once, whatever ran twice.
    assert_eq!(runs_of::<B>(&mut conn, CHILD).1, 300);
}

/// A worker process killed with SIGKILL in the middle of a workflow (a root, 200 steps after it
/// and a join after all of them): another worker takes its steps over after the lease, every
/// step finishes once, the join runs once and only after all 200, and `on_complete` runs once.
fn a_worker_killed_mid_workflow_still_completes_it_once<B: TestBackend>() {
    if B::NAME == "sqlite" {
        return; // the process tests run on the servers
    }
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let step = |name: String| {
        let input = json!({ "sleep_ms": 10, "record": true });
        Step::new(name, CHILD, RunArgs::new().input(&input))
    };
    let names: Vec<String> = (0..200).map(|i| format!("step-{i}")).collect();
    let mut builder = registry
        .workflow("import")
        .on_complete(ON_COMPLETE)
        .step(step("root".to_owned()));
    for name in &names {
        builder = builder.step(step(name.clone()).after(["root"]));
    }
    let workflow = builder
        .step(step("join".to_owned()).after(names))
        .enqueue(&mut conn)
        .unwrap();
    kill_a_worker_midway_then_rescue::<B>(&db, &mut conn, &registry, workflow.id());
    let parent = BatchOperation::find(&mut conn, workflow.id()).unwrap();
    assert_eq!(parent.result(), OperationResult::Successful);
    let progress = BatchOperation::batch_progress(&mut conn, workflow.id()).unwrap();
    assert_eq!((progress.succeeded, progress.failed), (202, 0));
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), (1, 1));
    // Every step finished once, whatever ran twice; the join ran once, after every other step
    // had finished.
    assert_eq!(runs_of::<B>(&mut conn, CHILD).1, 202);
    let join = workflow.step_id("join").unwrap();
    let last_dependency = B::select_i64s(
        &mut conn,
        &format!(
            "SELECT COUNT(*) AS v FROM batchframework_batchoperation \
             WHERE parent_id = {} AND id <> {join} AND finished_datetime > \
             (SELECT started_running_datetime FROM batchframework_batchoperation WHERE id = {join})",
            workflow.id()
        ),
    );
    assert_eq!(
        last_dependency,
        [Some(0)],
        "a step finished after the join started"
    );
    let join_runs = B::select_i64s(
        &mut conn,
        &format!("SELECT COUNT(*) AS v FROM executions WHERE operation_id = {join}"),
    );
    assert_eq!(join_runs, [Some(1)]);
}

/// 200 batches of two children, each pair held by two workers (one thread each, one operation
/// per claim) that meet before they finish, so their keepers commit the last two children of
/// each batch at the same instant: each batch gets exactly one callback.
fn the_last_two_children_finished_at_once_give_one_callback<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let rendezvous = Arc::new(Rendezvous::default());
    let registry = registry::<B>(Arc::clone(&rendezvous));
    let mut parents = Vec::new();
    for _ in 0..200 {
        let pair = [0, 1].map(|_| Child::new(PAIRED, RunArgs::new()));
        let parent = registry
            .batch("pair")
            .on_complete(ON_COMPLETE)
            .enqueue(&mut conn, pair)
            .unwrap();
        parents.push(parent.id());
    }
    let workers = ["left", "right"].map(|name| {
        Worker::new(Arc::clone(&registry), B::pool(&db, 3))
            .name(name)
            .batch_size(1)
            .poll_interval(Duration::from_millis(5))
            .start(1)
            .unwrap()
    });
    let waiter = B::pool(&db, 2);
    for parent in &parents {
        let done = BatchOperation::wait(&waiter, *parent, Duration::from_secs(60)).unwrap();
        assert_eq!(done.result(), OperationResult::Successful);
    }
    for worker in workers {
        worker.shutdown(Duration::from_secs(30)).unwrap();
    }
    let callbacks = OperationFilter::new()
        .operation_type(ON_COMPLETE)
        .load(&mut conn)
        .unwrap();
    let mut about: Vec<i64> = callbacks
        .iter()
        .map(|op| op.context_object_id().unwrap().parse().unwrap())
        .collect();
    about.sort_unstable();
    assert_eq!(about, parents, "one callback per batch");
    // Both workers took part, and each batch's children were held by the two of them.
    let holders = B::select_i64s(
        &mut conn,
        &format!(
            "SELECT COUNT(DISTINCT locked_by) AS v FROM batchframework_batchoperation \
             WHERE operationtype = '{PAIRED}' GROUP BY parent_id ORDER BY v"
        ),
    );
    let split = holders.iter().filter(|n| **n == Some(2)).count();
    assert!(
        split >= 150,
        "only {split} of 200 batches were finished by both workers"
    );
    for parent in parents {
        let progress = BatchOperation::batch_progress(&mut conn, parent).unwrap();
        assert_eq!((progress.total, progress.succeeded), (2, 2));
    }
}

/// A batch with a sub-batch: the sub-batch counts as one child of the outer one when it
/// completes, and each batch's callback runs once.
fn a_nested_batch_counts_as_one_child_of_its_parent<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let inner = registry.batch("inner").on_complete(ON_COMPLETE);
    let outer = registry
        .batch("outer")
        .on_success(ON_SUCCESS)
        .sub_batch(inner, children(3, 0, 0).collect())
        .enqueue(&mut conn, children(2, 0, 0))
        .unwrap();
    let progress = BatchOperation::batch_progress(&mut conn, outer.id()).unwrap();
    assert_eq!((progress.total, progress.finished()), (3, 0));
    drain::<B>(&db, &registry);
    let mut outer = outer;
    outer.reload(&mut conn).unwrap();
    assert_eq!(outer.result(), OperationResult::Successful);
    let summary: BatchSummary = outer.output_data().unwrap().unwrap();
    assert_eq!(
        (summary.total, summary.succeeded, summary.failed),
        (3, 3, 0)
    );
    let inner = OperationFilter::new()
        .operation_type("inner")
        .load(&mut conn)
        .unwrap();
    assert_eq!(inner[0].parent_id(), Some(outer.id()));
    assert_eq!(inner[0].result(), OperationResult::Successful);
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), (1, 1));
    assert_eq!(runs_of::<B>(&mut conn, ON_SUCCESS), (1, 1));
    assert_eq!(runs_of::<B>(&mut conn, CHILD), (5, 5));
}

/// Cancelling a batch: pending children are finished as cancelled, the parent fails with the
/// reason, `on_complete` is enqueued once and `on_success` never; a second cancel is refused.
/// Neither `remove_pending` nor a retry takes a child away from its batch, and an operator's
/// cancel of a parent cancels its batch.
fn cancelling_a_batch_fails_it_and_runs_on_complete_once<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let parent = registry
        .batch("import")
        .on_success(ON_SUCCESS)
        .on_complete(ON_COMPLETE)
        .enqueue(&mut conn, children(50, 0, 0))
        .unwrap();
    // Removing pending work leaves a batch's children to their batch.
    assert_eq!(OperationFilter::new().remove_pending(&mut conn).unwrap(), 0);
    let cancelled = cancel_batch(&mut conn, parent.id(), "operator changed their mind").unwrap();
    assert_eq!(
        (cancelled.status(), cancelled.result()),
        (Status::Finished, OperationResult::Failed)
    );
    let summary: BatchSummary = cancelled.output_data().unwrap().unwrap();
    assert_eq!(
        summary.cancelled.as_deref(),
        Some("operator changed their mind")
    );
    assert_eq!((summary.failed, summary.failed_ids.len()), (50, 50));
    let kids = OperationFilter::new()
        .parent(parent.id())
        .load(&mut conn)
        .unwrap();
    assert_eq!(kids.len(), 50);
    for kid in &kids {
        assert_eq!(kid.result(), OperationResult::Failed);
        let output: Value = kid.output_data().unwrap().unwrap();
        assert_eq!(output["cancelled"], json!(true));
    }
    assert!(matches!(
        cancel_batch(&mut conn, parent.id(), "again"),
        Err(Error::IllegalTransition { .. })
    ));
    assert!(matches!(
        cancel_batch(&mut conn, kids[0].id(), "not a batch"),
        Err(Error::NotABatch { .. })
    ));
    // Counted in their batch, a child and the parent cannot be retried on their own.
    for id in [kids[0].id(), parent.id()] {
        assert!(matches!(
            admin::retry(&mut conn, id),
            Err(Error::PartOfABatch { .. })
        ));
    }
    assert_eq!(
        admin::retry_failed(&mut conn, &OperationFilter::new()).unwrap(),
        0
    );
    // An operator's cancel of a parent cancels its batch.
    let other = registry
        .batch("import")
        .on_complete(ON_COMPLETE)
        .enqueue(&mut conn, children(3, 0, 0))
        .unwrap();
    let Cancelled::Finished(other) = admin::cancel(&mut conn, other.id(), "ops").unwrap() else {
        panic!("a batch's parent is cancelled with its batch");
    };
    let summary: BatchSummary = other.output_data().unwrap().unwrap();
    assert_eq!(
        (summary.failed, summary.cancelled.as_deref()),
        (3, Some("cancelled by ops"))
    );
    drain::<B>(&db, &registry);
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), (2, 2));
    assert_eq!(runs_of::<B>(&mut conn, ON_SUCCESS), (0, 0));
    assert_eq!(runs_of::<B>(&mut conn, CHILD), (0, 0));
}

/// An empty batch completes as it is created; a batch naming an unknown group stores nothing.
fn an_empty_batch_completes_at_once_and_a_bad_one_stores_nothing<B: TestBackend>() {
    let (_db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let empty = registry
        .batch("nothing")
        .on_success(ON_SUCCESS)
        .enqueue(&mut conn, std::iter::empty())
        .unwrap();
    assert_eq!(
        (empty.status(), empty.result()),
        (Status::Finished, OperationResult::Successful)
    );
    assert_eq!(
        OperationFilter::new()
            .operation_type(ON_SUCCESS)
            .count(&mut conn)
            .unwrap(),
        1
    );
    let before = OperationFilter::new().count(&mut conn).unwrap();
    let unknown_child = registry.batch("bad").enqueue(
        &mut conn,
        children(3, 0, 0).chain([Child::new("no-such-group", RunArgs::new())]),
    );
    assert!(matches!(
        unknown_child,
        Err(Error::UnknownActionGroup { .. })
    ));
    let unknown_callback = registry
        .batch("bad")
        .on_complete("no-such-group")
        .enqueue(&mut conn, children(3, 0, 0));
    assert!(matches!(
        unknown_callback,
        Err(Error::UnknownActionGroup { .. })
    ));
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), before);
}

/// `wait` returns the finished operation soon after the finish (on PostgreSQL, where it wakes
/// on a notification, within 50 ms: the median of 5 waits, so that a moment of load on a shared
/// machine does not decide; waiting by its once-a-second read instead would put the median near
/// half a second), and a timeout error while it runs.
fn wait_returns_soon_after_the_finish<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let waiter = B::pool(&db, 2);
    let first = registry
        .batch("import")
        .enqueue(&mut conn, children(1, 0, 100))
        .unwrap();
    let timed_out = BatchOperation::wait(&waiter, first.id(), Duration::from_millis(20));
    assert!(matches!(
        timed_out,
        Err(Error::WaitTimedOut {
            status: Status::Running,
            ..
        })
    ));
    let worker = Worker::new(Arc::clone(&registry), B::pool(&db, 3))
        .start(1)
        .unwrap();
    let mut late = Vec::new();
    for round in 0..5 {
        let parent = if round == 0 {
            first.clone()
        } else {
            registry
                .batch("import")
                .enqueue(&mut conn, children(1, 0, 100))
                .unwrap()
        };
        let finished = BatchOperation::wait(&waiter, parent.id(), Duration::from_secs(30)).unwrap();
        let returned = chrono::Utc::now();
        assert_eq!(finished.result(), OperationResult::Successful);
        // The parent is finished in the transaction that finishes its last child, just before
        // that transaction commits.
        late.push(returned - finished.finished_datetime().unwrap());
    }
    worker.shutdown(Duration::from_secs(30)).unwrap();
    late.sort();
    let limit = if B::NAME == "postgres" { 50 } else { 1_000 };
    assert!(
        late[2] < chrono::Duration::milliseconds(limit),
        "returned a median {} after the finish: {late:?}",
        late[2]
    );
}

backend_tests!(
    ten_thousand_children_in_two_workers_complete_once,
    with_5_percent_failing_on_complete_runs_once_and_on_success_never,
    a_worker_killed_mid_batch_still_completes_it_once,
    a_worker_killed_mid_workflow_still_completes_it_once,
    the_last_two_children_finished_at_once_give_one_callback,
    a_nested_batch_counts_as_one_child_of_its_parent,
    cancelling_a_batch_fails_it_and_runs_on_complete_once,
    an_empty_batch_completes_at_once_and_a_bad_one_stores_nothing,
    wait_returns_soon_after_the_finish,
);
