//! Workflows: a three-level workflow with fan-out and fan-in run by several worker threads, a
//! failed step cancelling its dependents, a step that runs even so, the last two dependencies
//! of a step finished at the same instant by two workers, cycles and other bad shapes refused
//! with nothing stored, cancelling a workflow.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::batch::{cancel_batch, BatchSummary};
use batchframework_diesel::registry::{ActionContext, ActionError, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::workflow::Step;
use batchframework_diesel::{BatchOperation, Error, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend, TestDatabase};

use crate::batches::{record, set_up, Rendezvous};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

/// A step: checks that every step it depends on has finished (it must not have been claimed
/// before), records its run, reads its dependencies' outputs and returns their sum plus its
/// input's `value`; fails when its input says `{"fail": true}`.
const STEP: &str = "step";
/// A step that meets another at a rendezvous of two before it finishes.
const PAIRED: &str = "paired";
/// The callbacks: record their run.
const ON_SUCCESS: &str = "workflow-succeeded";
const ON_COMPLETE: &str = "workflow-completed";

/// What a step's action does; see [`STEP`].
fn run_step<C: batchframework_diesel::BatchConnection + SimpleConnection>(
    ctx: &mut ActionContext<'_, C>,
) -> Result<Value, ActionError> {
    let id = ctx.operation().id();
    record(ctx.conn(), id)?;
    let input: Value = ctx.operation().input_data()?.unwrap_or(Value::Null);
    let mut sum = input["value"].as_i64().unwrap_or(0);
    let mut unfinished = Vec::new();
    let mut failed = Vec::new();
    for (name, dependency) in ctx.dependencies()? {
        let status = BatchOperation::find(ctx.conn(), dependency)?.status();
        if status != Status::Finished {
            unfinished.push(name.clone());
        }
        assert_eq!(ctx.dependency(&name)?, dependency);
        match ctx.dependency_output::<i64>(dependency)? {
            Some(value) => sum += value,
            None => failed.push(name),
        }
    }
    if !unfinished.is_empty() {
        return Err(ActionError::msg(format!(
            "started before {unfinished:?} finished"
        )));
    }
    if input["fail"] == json!(true) {
        return Err(ActionError::msg("told to fail"));
    }
    // Asking for a step it does not depend on is refused.
    match ctx.dependency("no-such-step") {
        Err(Error::NotADependency { .. }) => {}
        other => {
            return Err(ActionError::msg(format!(
                "expected NotADependency: {other:?}"
            )))
        }
    }
    Ok(json!(sum))
}

fn registry<B: TestBackend>(rendezvous: Arc<Rendezvous>) -> Arc<Registry<B::Connection>> {
    let recorder = |ctx: &mut ActionContext<'_, B::Connection>| {
        let id = ctx.operation().id();
        record(ctx.conn(), id)?;
        Ok(Value::Null)
    };
    Arc::new(
        Registry::<B::Connection>::builder()
            .group_with(STEP, |group| {
                group
                    .asynchronous()
                    .action_fn("run", run_step::<B::Connection>)
            })
            .group_with(PAIRED, |group| {
                group.asynchronous().action_fn(
                    "meet",
                    move |ctx: &mut ActionContext<'_, B::Connection>| {
                        rendezvous.meet();
                        let id = ctx.operation().id();
                        record(ctx.conn(), id)?;
                        Ok(json!(1))
                    },
                )
            })
            .group_with(ON_SUCCESS, |group| {
                group.asynchronous().action_fn("record", recorder)
            })
            .group_with(ON_COMPLETE, |group| {
                group.asynchronous().action_fn("record", recorder)
            })
            .build()
            .unwrap(),
    )
}

/// How often the operation `id` ran.
fn runs<B: TestBackend>(conn: &mut B::Connection, id: i64) -> i64 {
    B::select_i64s(
        conn,
        &format!("SELECT COUNT(*) AS v FROM executions WHERE operation_id = {id}"),
    )[0]
    .unwrap_or(0)
}

/// How many runs of operations of `operation_type` were recorded.
fn runs_of<B: TestBackend>(conn: &mut B::Connection, operation_type: &str) -> i64 {
    B::select_i64s(
        conn,
        &format!(
            "SELECT COUNT(*) AS v FROM executions e JOIN batchframework_batchoperation o \
             ON o.id = e.operation_id WHERE o.operationtype = '{operation_type}'"
        ),
    )[0]
    .unwrap_or(0)
}

fn step(name: &str, value: i64) -> Step {
    Step::new(name, STEP, RunArgs::new().input(&json!({ "value": value })))
}

fn failing(name: &str) -> Step {
    Step::new(name, STEP, RunArgs::new().input(&json!({ "fail": true })))
}

/// Runs everything due, with `threads` threads, until nothing is left (callbacks included).
fn drain<B: TestBackend>(
    db: &TestDatabase,
    registry: &Arc<Registry<B::Connection>>,
    threads: usize,
) {
    let size = u32::try_from(threads).unwrap() + 2;
    Worker::new(Arc::clone(registry), B::pool(db, size))
        .poll_interval(Duration::from_millis(5))
        .run_until_idle(threads)
        .unwrap();
}

/// `root` (1), then 20 steps after it (`fan-i`, each adding i), then `join` after all 20,
/// then `last-1` and `last-2` after `join`, then `end` after both, drained by 4 threads:
/// every step runs once, after its dependencies (each checks), reads their outputs, and the
/// workflow succeeds with one `on_success`.
fn a_three_level_workflow_fans_out_and_in<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let fan: Vec<String> = (1..=20).map(|i| format!("fan-{i}")).collect();
    let mut builder = registry
        .workflow("three-levels")
        .on_success(ON_SUCCESS)
        .on_complete(ON_COMPLETE)
        // Given out of order on purpose: the builder records each after its dependencies.
        .step(step("end", 0).after(["last-1", "last-2"]))
        .step(step("root", 1));
    for (i, name) in fan.iter().enumerate() {
        builder = builder.step(step(name, i as i64 + 1).after(["root"]));
    }
    let workflow = builder
        .step(step("join", 0).after(fan.clone()))
        .step(step("last-1", 0).after(["join"]))
        .step(step("last-2", 0).after(["join"]))
        .enqueue(&mut conn)
        .unwrap();
    let names: Vec<&str> = workflow.steps().map(|(name, _)| name).collect();
    assert_eq!(names.first(), Some(&"root"));
    assert_eq!(names.last(), Some(&"end"));

    // Only the root is due; a worker that runs until idle leaves nothing else undone.
    let progress = BatchOperation::batch_progress(&mut conn, workflow.id()).unwrap();
    assert_eq!((progress.total, progress.finished()), (25, 0));
    drain::<B>(&db, &registry, 4);

    for (name, id) in workflow.steps() {
        assert_eq!(runs::<B>(&mut conn, id), 1, "step {name} ran once");
        let step = BatchOperation::find(&mut conn, id).unwrap();
        assert_eq!(
            step.result(),
            OperationResult::Successful,
            "{name}: {step:?}"
        );
    }
    // Each fan step adds its own value to the root's 1; join sums them; the sum flows on.
    let fan_sum: i64 = (1..=20).map(|i| 1 + i).sum();
    let output = |conn: &mut B::Connection, name: &str| -> Value {
        let op = BatchOperation::find(conn, workflow.step_id(name).unwrap()).unwrap();
        let result: Value = op.output_data().unwrap().unwrap();
        result["results"][0]["success_output_data"].clone()
    };
    assert_eq!(output(&mut conn, "join"), json!(fan_sum));
    assert_eq!(output(&mut conn, "end"), json!(2 * fan_sum));
    let parent = BatchOperation::find(&mut conn, workflow.id()).unwrap();
    assert_eq!(parent.result(), OperationResult::Successful);
    let summary: BatchSummary = parent.output_data().unwrap().unwrap();
    assert_eq!((summary.total, summary.succeeded), (25, 25));
    assert_eq!(runs_of::<B>(&mut conn, ON_SUCCESS), 1);
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), 1);
}

/// `a` succeeds; `b` after it fails; `c` after `b` and `d` after `c` are cancelled, never
/// run; `e` after `b` runs anyway (it said so) and sees no output of `b`; `f` after `a` runs.
/// The workflow fails with b, c and d counted failed, `on_complete` runs once, `on_success`
/// never.
fn a_failed_step_cancels_its_dependents<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let workflow = registry
        .workflow("failing")
        .on_success(ON_SUCCESS)
        .on_complete(ON_COMPLETE)
        .step(step("a", 1))
        .step(failing("b").after(["a"]))
        .step(step("c", 0).after(["b"]))
        .step(step("d", 0).after(["c", "a"]))
        .step(step("e", 5).after(["b", "a"]).even_if_dependencies_fail())
        .step(step("f", 0).after(["a"]))
        .enqueue(&mut conn)
        .unwrap();
    drain::<B>(&db, &registry, 2);

    let id = |name: &str| workflow.step_id(name).unwrap();
    for (name, ran, result) in [
        ("a", 1, OperationResult::Successful),
        ("b", 1, OperationResult::Failed),
        ("c", 0, OperationResult::Failed),
        ("d", 0, OperationResult::Failed),
        ("e", 1, OperationResult::Successful),
        ("f", 1, OperationResult::Successful),
    ] {
        assert_eq!(runs::<B>(&mut conn, id(name)), ran, "runs of {name}");
        let op = BatchOperation::find(&mut conn, id(name)).unwrap();
        assert_eq!(
            (op.status(), op.result()),
            (Status::Finished, result),
            "{name}"
        );
    }
    let c = BatchOperation::find(&mut conn, id("c")).unwrap();
    let reason: Value = c.output_data().unwrap().unwrap();
    assert_eq!(
        reason,
        json!({ "cancelled": true, "reason": format!("dependency {} failed", id("b")) })
    );
    let d = BatchOperation::find(&mut conn, id("d")).unwrap();
    let reason: Value = d.output_data().unwrap().unwrap();
    assert_eq!(
        reason["reason"],
        json!(format!("dependency {} failed", id("c")))
    );
    // e ran with a's output (1) and none from b.
    let e = BatchOperation::find(&mut conn, id("e")).unwrap();
    let result: Value = e.output_data().unwrap().unwrap();
    assert_eq!(result["results"][0]["success_output_data"], json!(6));

    let parent = BatchOperation::find(&mut conn, workflow.id()).unwrap();
    assert_eq!(parent.result(), OperationResult::Failed);
    let summary: BatchSummary = parent.output_data().unwrap().unwrap();
    assert_eq!((summary.succeeded, summary.failed), (3, 3));
    let mut failed = vec![id("b"), id("c"), id("d")];
    failed.sort_unstable();
    assert_eq!(summary.failed_ids, failed);
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), 1);
    assert_eq!(runs_of::<B>(&mut conn, ON_SUCCESS), 0);
}

/// 60 workflows of two paired steps and a `join` after both, the pairs held by two workers
/// (one thread each, one operation per claim) that meet before they finish, so their keepers
/// commit a join's last two dependencies at the same instant: each join runs exactly once.
fn the_last_two_dependencies_finished_at_once_release_once<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let rendezvous = Arc::new(Rendezvous::default());
    let registry = registry::<B>(Arc::clone(&rendezvous));
    let mut workflows = Vec::new();
    for _ in 0..60 {
        let workflow = registry
            .workflow("pair")
            .step(Step::new("left", PAIRED, RunArgs::new().priority(1)))
            .step(Step::new("right", PAIRED, RunArgs::new().priority(1)))
            .step(step("join", 0).after(["left", "right"]))
            .enqueue(&mut conn)
            .unwrap();
        workflows.push(workflow);
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
    for workflow in &workflows {
        let done = BatchOperation::wait(&waiter, workflow.id(), Duration::from_secs(60)).unwrap();
        assert_eq!(done.result(), OperationResult::Successful, "{done:?}");
    }
    for worker in workers {
        worker.shutdown(Duration::from_secs(30)).unwrap();
    }
    for workflow in &workflows {
        let join = workflow.step_id("join").unwrap();
        assert_eq!(runs::<B>(&mut conn, join), 1);
        let op = BatchOperation::find(&mut conn, join).unwrap();
        let result: Value = op.output_data().unwrap().unwrap();
        assert_eq!(result["results"][0]["success_output_data"], json!(2));
    }
    // The pairs were split across both workers, so the finishes did race.
    let split = B::select_i64s(
        &mut conn,
        &format!(
            "SELECT COUNT(DISTINCT locked_by) AS v FROM batchframework_batchoperation \
             WHERE operationtype = '{PAIRED}' GROUP BY parent_id"
        ),
    )
    .iter()
    .filter(|n| **n == Some(2))
    .count();
    assert!(
        split >= 40,
        "only {split} of 60 pairs were split across both workers"
    );
}

/// A cycle, an unknown dependency, a name given twice, a delayed step with dependencies and an
/// unknown group are refused before anything is stored.
fn bad_workflows_are_refused_and_store_nothing<B: TestBackend>() {
    let (_db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let error = registry
        .workflow("cycle")
        .step(step("start", 0))
        .step(step("a", 0).after(["start", "c"]))
        .step(step("b", 0).after(["a"]))
        .step(step("c", 0).after(["b"]))
        .enqueue(&mut conn)
        .unwrap_err();
    assert!(
        matches!(&error, Error::DependencyCycle { steps } if steps == &["a", "c", "b"]),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("`a` waits for `c`, which waits for `b`, which waits for `a`"),
        "{error}"
    );
    let unknown = registry
        .workflow("unknown")
        .step(step("a", 0).after(["nope"]))
        .enqueue(&mut conn)
        .unwrap_err();
    assert!(matches!(unknown, Error::UnknownStep { .. }), "{unknown:?}");
    let twice = registry
        .workflow("twice")
        .step(step("a", 0))
        .step(step("a", 0))
        .enqueue(&mut conn)
        .unwrap_err();
    assert!(matches!(twice, Error::DuplicateStep { .. }), "{twice:?}");
    let delayed = registry
        .workflow("delayed")
        .step(step("a", 0))
        .step(Step::new("b", STEP, RunArgs::new().delay(Duration::from_secs(60))).after(["a"]))
        .enqueue(&mut conn)
        .unwrap_err();
    assert!(matches!(delayed, Error::DelayedStep { .. }), "{delayed:?}");
    let group = registry
        .workflow("group")
        .step(step("a", 0))
        .step(Step::new("b", "no-such-group", RunArgs::new()).after(["a"]))
        .enqueue(&mut conn)
        .unwrap_err();
    assert!(
        matches!(group, Error::UnknownActionGroup { .. }),
        "{group:?}"
    );
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
    let rows = B::select_i64s(
        &mut conn,
        "SELECT COUNT(*) AS v FROM batchframework_step \
         UNION ALL SELECT COUNT(*) AS v FROM batchframework_dependency \
         UNION ALL SELECT COUNT(*) AS v FROM batchframework_batch",
    );
    assert_eq!(rows, [Some(0), Some(0), Some(0)]);

    // A workflow without steps completes at once.
    let empty = registry
        .workflow("empty")
        .on_success(ON_SUCCESS)
        .enqueue(&mut conn)
        .unwrap();
    assert_eq!(empty.operation().result(), OperationResult::Successful);
}

/// Cancelling a workflow cancels its waiting steps with the rest: nothing runs afterwards, and
/// `on_complete` runs once.
fn cancelling_a_workflow_cancels_its_waiting_steps<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let workflow = registry
        .workflow("to-cancel")
        .on_complete(ON_COMPLETE)
        .step(step("a", 0))
        .step(step("b", 0).after(["a"]))
        .step(step("c", 0).after(["b"]))
        .enqueue(&mut conn)
        .unwrap();
    let parent = cancel_batch(&mut conn, workflow.id(), "not needed").unwrap();
    assert_eq!(parent.result(), OperationResult::Failed);
    drain::<B>(&db, &registry, 1);
    for (name, id) in workflow.steps() {
        assert_eq!(runs::<B>(&mut conn, id), 0, "{name} never runs");
        let op = BatchOperation::find(&mut conn, id).unwrap();
        assert_eq!(op.status(), Status::Finished);
    }
    assert_eq!(runs_of::<B>(&mut conn, ON_COMPLETE), 1);
}

/// A waiting step is not claimed, however many workers look: a worker whose registry has only
/// the step's group finds nothing due while the step's dependency is pending.
fn a_waiting_step_is_never_claimed<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let workflow = registry
        .workflow("waiting")
        .step(Step::new("first", PAIRED, RunArgs::new()))
        .step(step("second", 0).after(["first"]))
        .enqueue(&mut conn)
        .unwrap();
    let only_steps = Arc::new(
        Registry::<B::Connection>::builder()
            .group_with(STEP, |group| {
                group
                    .asynchronous()
                    .action_fn("run", run_step::<B::Connection>)
            })
            .build()
            .unwrap(),
    );
    let stats = Worker::new(only_steps, B::pool(&db, 3))
        .run_until_idle(1)
        .unwrap();
    assert_eq!(stats.succeeded + stats.failed, 0, "{stats:?}");
    let second = BatchOperation::find(&mut conn, workflow.step_id("second").unwrap()).unwrap();
    assert_eq!(second.status(), Status::Unprocessed);
    assert!(second.is_waiting_for_dependencies());
    let first = BatchOperation::find(&mut conn, workflow.step_id("first").unwrap()).unwrap();
    assert!(!first.is_waiting_for_dependencies());
}

/// Enqueueing a workflow sends the same statements whatever its size on PostgreSQL (each table
/// written by one `COPY`, the steps' ids read back at once), and a handful of chunks elsewhere.
fn enqueue_costs_the_same_statements_whatever_the_size<B: TestBackend>() {
    let (_db, mut conn) = set_up::<B>();
    let registry = registry::<B>(Arc::default());
    let counter = batchframework_tests::StatementCounter::install(&mut conn);
    let mut counts = Vec::new();
    for size in [3, 3_000] {
        let mut builder = registry.workflow("sized").step(step("root", 0));
        for i in 1..size {
            builder = builder.step(step(&format!("s{i}"), 0).after(["root"]));
        }
        counter.take();
        let workflow = builder.enqueue(&mut conn).unwrap();
        assert_eq!(workflow.steps().count(), size);
        counts.push(counter.take());
    }
    if B::NAME == "postgres" {
        assert_eq!(counts[0].len(), counts[1].len(), "{counts:#?}");
        // The parent, its counts row, the steps' operations (COPY), their ids, the steps
        // (COPY), the dependencies (COPY).
        assert_eq!(counts[0].len(), 6, "{:#?}", counts[0]);
    } else {
        // Multi-row INSERTs of as many rows as the bind limits take.
        assert!(counts[1].len() <= counts[0].len() + 12, "{:#?}", counts[1]);
    }
}

backend_tests!(
    a_three_level_workflow_fans_out_and_in,
    a_failed_step_cancels_its_dependents,
    the_last_two_dependencies_finished_at_once_release_once,
    bad_workflows_are_refused_and_store_nothing,
    cancelling_a_workflow_cancels_its_waiting_steps,
    a_waiting_step_is_never_claimed,
    enqueue_costs_the_same_statements_whatever_the_size,
);
