//! Workers in separate processes: two processes (and this one) draining one queue, and a worker
//! killed with SIGKILL mid-operation whose operation another worker re-runs after the lease.
//!
//! The child processes are this test binary itself, re-run on the ignored test
//! `processes::child_worker`, told what to do through environment variables.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend, TestDatabase};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::json;

/// Records each run in `executions`; `hang-first` sleeps a minute on its first attempt.
fn registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    fn record<C: SimpleConnection>(conn: &mut C, id: i64) -> Result<(), ActionError> {
        conn.batch_execute(&format!(
            "INSERT INTO executions (operation_id) VALUES ({id})"
        ))
        .map_err(ActionError::from)
    }
    Arc::new(
        Registry::builder()
            .group(ActionGroup::new("record").asynchronous().action(action_fn(
                "record",
                |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    let id = ctx.operation().id();
                    record(ctx.conn(), id)?;
                    Ok(json!(id))
                },
            )))
            .group(
                ActionGroup::new("hang-first")
                    .asynchronous()
                    .max_attempts(2)
                    .action(action_fn(
                        "hang",
                        |ctx: &mut batchframework_diesel::registry::ActionContext<
                            '_,
                            B::Connection,
                        >| {
                            let (id, attempt) = (ctx.operation().id(), ctx.operation().attempts());
                            record(ctx.conn(), id)?;
                            if attempt == 1 {
                                std::thread::sleep(Duration::from_secs(60));
                            }
                            Ok(json!(attempt))
                        },
                    )),
            )
            .build()
            .unwrap(),
    )
}

fn spawn_child(backend: &str, db: &TestDatabase, lease_ms: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "processes::child_worker",
            "--ignored",
            "--nocapture",
        ])
        .env("BF_CHILD_BACKEND", backend)
        .env("BF_CHILD_URL", &db.url)
        .env("BF_CHILD_LEASE_MS", lease_ms.to_string())
        .spawn()
        .unwrap()
}

/// Not a test of its own: the worker process the tests below start.
#[test]
#[ignore = "run as a child process by the processes tests"]
fn child_worker() {
    let backend = std::env::var("BF_CHILD_BACKEND").expect("BF_CHILD_BACKEND");
    match backend.as_str() {
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
    let url = std::env::var("BF_CHILD_URL").expect("BF_CHILD_URL");
    let lease: u64 = std::env::var("BF_CHILD_LEASE_MS").unwrap().parse().unwrap();
    let db = TestDatabase::existing(url);
    let stats = Worker::new(registry::<B>(), B::pool(&db, 3))
        .lease(Duration::from_millis(lease))
        .run_until_idle(2)
        .unwrap();
    println!("child done: {stats:?}");
}

/// Runs recorded in `executions`: (all, distinct operations).
fn executions<B: TestBackend>(conn: &mut B::Connection) -> (i64, i64) {
    let (all, distinct) = crate::worker::executions::<B>(conn);
    (all.unwrap_or(0), distinct.unwrap_or(0))
}

/// Two worker processes and this one drain 2,000 operations: each runs exactly once.
fn three_processes_run_every_operation_exactly_once<B: TestBackend>() {
    let (db, mut conn) = crate::worker::set_up::<B>();
    let registry = registry::<B>();
    conn.transaction::<_, batchframework_diesel::Error, _>(|conn| {
        for _ in 0..2_000 {
            registry.run(conn, "record", RunArgs::new())?;
        }
        Ok(())
    })
    .unwrap();
    let children = [
        spawn_child(B::NAME, &db, 30_000),
        spawn_child(B::NAME, &db, 30_000),
    ];
    let mine = Worker::new(registry, B::pool(&db, 3))
        .run_until_idle(2)
        .unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child worker failed");
    }
    assert_eq!(executions::<B>(&mut conn), (2_000, 2_000));
    let finished = batchframework_diesel::OperationFilter::new()
        .status(Status::Finished)
        .count(&mut conn)
        .unwrap();
    assert_eq!(finished, 2_000);
    assert!(mine.succeeded < 2_000, "the children took part");
}

/// A worker killed with SIGKILL in the middle of an operation: after the lease another worker
/// runs it again and finishes it; the attempts are recorded.
fn a_killed_workers_operation_is_rerun_after_the_lease<B: TestBackend>() {
    let (db, mut conn) = crate::worker::set_up::<B>();
    let registry = registry::<B>();
    let op = registry
        .run(&mut conn, "hang-first", RunArgs::new())
        .unwrap()
        .operation;
    let mut child = spawn_child(B::NAME, &db, 1_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while executions::<B>(&mut conn).0 < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, the operation stays `running`
    child.wait().unwrap();
    let held = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!((held.status(), held.attempts()), (Status::Running, 1));

    let rescuer = Worker::new(registry, B::pool(&db, 2))
        .name("rescuer")
        .lease(Duration::from_millis(1_000));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        rescuer.run_until_idle(1).unwrap();
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        if stored.status() == Status::Finished {
            assert_eq!(stored.result(), OperationResult::Successful);
            assert_eq!(
                (stored.attempts(), stored.locked_by()),
                (2, Some("rescuer"))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {stored:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(executions::<B>(&mut conn), (2, 1));
}

backend_tests!(
    three_processes_run_every_operation_exactly_once,
    a_killed_workers_operation_is_rerun_after_the_lease,
);
