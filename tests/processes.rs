//! Workers in separate processes: two processes (and this one) draining one queue, a worker
//! killed with SIGKILL mid-operation whose operation another worker re-runs after the lease, and
//! a started worker stopped by SIGTERM that finishes its action and gives back the rest.
//!
//! The child processes are this test binary itself, re-run on the ignored test
//! `processes::child_worker`, told what to do through environment variables.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend, TestDatabase};
use diesel::connection::SimpleConnection;
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
            .group(ActionGroup::new("slow").asynchronous().action(action_fn(
                "slow",
                |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                    let id = ctx.operation().id();
                    record(ctx.conn(), id)?;
                    std::thread::sleep(Duration::from_millis(500));
                    Ok(json!(id))
                },
            )))
            .build()
            .unwrap(),
    )
}

/// The command that re-runs this test binary as a child worker on `db`.
fn child_command(backend: &str, db: &TestDatabase, lease_ms: u64) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "processes::child_worker",
            "--ignored",
            "--nocapture",
        ])
        .env("BF_CHILD_BACKEND", backend)
        .env("BF_CHILD_URL", &db.url)
        .env("BF_CHILD_LEASE_MS", lease_ms.to_string());
    command
}

/// Starts a child that drains the queue with `run_until_idle`.
fn spawn_child(backend: &str, db: &TestDatabase, lease_ms: u64) -> Child {
    child_command(backend, db, lease_ms).spawn().unwrap()
}

/// What a child started with `BF_CHILD_UNTIL_SIGNALLED` prints once its signal handlers are in.
const CHILD_READY: &str = "child worker ready";

/// Starts a child running a started worker until SIGINT/SIGTERM, and waits until it is ready.
fn spawn_signalled_child(backend: &str, db: &TestDatabase) -> Child {
    let mut child = child_command(backend, db, 30_000)
        .env("BF_CHILD_UNTIL_SIGNALLED", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(CHILD_READY) => break,
            Some(_) => {}
            None => panic!(
                "the child worker exited before it was ready: {:?}",
                child.wait()
            ),
        }
    }
    // Keep draining its output so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
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
    if std::env::var_os("BF_CHILD_UNTIL_SIGNALLED").is_some() {
        // A started worker, as a service runs one: it stops on SIGINT/SIGTERM.
        let handle = Worker::new(registry::<B>(), B::pool(&db, 2))
            .lease(Duration::from_millis(lease))
            .batch_size(5)
            .poll_interval(Duration::from_millis(20))
            .start(1)
            .unwrap();
        handle.stop_on_signals().unwrap();
        println!("{CHILD_READY}");
        while !handle.is_stopping() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = handle.shutdown(Duration::from_secs(20)).unwrap();
        println!("child stopped: {stats:?}");
        return;
    }
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
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", 2_000);
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
    let op = crate::worker::queue::<B>(&mut conn, &registry, "hang-first");
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

/// SIGTERM to a started worker mid-action: it stops claiming, finishes the running action,
/// records its result, gives back the operations it claimed but did not start (attempt not
/// counted), and exits normally.
fn sigterm_finishes_the_running_action_and_gives_back_the_rest<B: TestBackend>() {
    let (db, mut conn) = crate::worker::set_up::<B>();
    let child = spawn_signalled_child(B::NAME, &db);
    let registry = registry::<B>();
    for _ in 0..5 {
        registry.run(&mut conn, "slow", RunArgs::new()).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while executions::<B>(&mut conn).0 < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started an action"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the child did not exit normally: {output:?}"
    );

    let (ran, distinct) = executions::<B>(&mut conn);
    assert_eq!(ran, distinct);
    assert!((1..5).contains(&ran), "{ran} ran");
    let all = batchframework_diesel::OperationFilter::new()
        .load(&mut conn)
        .unwrap();
    let finished: Vec<_> = all
        .iter()
        .filter(|op| op.status() == Status::Finished)
        .collect();
    assert_eq!(
        finished.len() as i64,
        ran,
        "every action that ran has its result: {all:?}"
    );
    assert!(finished
        .iter()
        .all(|op| op.result() == OperationResult::Successful));
    let released: Vec<_> = all
        .iter()
        .filter(|op| op.status() == Status::Unprocessed)
        .collect();
    assert_eq!(released.len() as i64, 5 - ran, "{all:?}");
    assert!(released
        .iter()
        .all(|op| op.attempts() == 0 && op.locked_by().is_none()));
}

backend_tests!(
    sigterm_finishes_the_running_action_and_gives_back_the_rest,
    three_processes_run_every_operation_exactly_once,
    a_killed_workers_operation_is_rerun_after_the_lease,
);
