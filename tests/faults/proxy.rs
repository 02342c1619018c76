//! A network that fails under a started worker: its pool connects through a TCP forwarder
//! (`support/forwarder.rs`) that, on command, cuts every open connection mid-stream, refuses
//! new ones for as long as an outage lasts, or swallows the server's reply to one commit. The
//! test's own connection goes to the server directly, and sees what really happened.
//!
//! * Cuts during a drain, and one while idle: the worker reconnects and finishes everything.
//! * An outage of 6 seconds: longer than the pool's `connection_timeout`, several backoff steps,
//!   and the worker's lease (3 s here, as a production outage outlasts a 30 s lease): the worker
//!   waits it out without stopping, then finishes, its interrupted operations included.
//! * `give_up_after`: the same outage stops that worker after the given time, with the error;
//!   what it held is taken over by another worker after its lease.
//! * A shutdown during an outage returns within its timeout and the result grace.
//! * A commit whose reply never comes (the server committed, the client cannot know): a claim's,
//!   and a group of results'. The first leaves operations `running` under a worker that does
//!   not know it holds them; the second makes the keeper write results that are already written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchframework_diesel::registry::RunArgs;
use batchframework_diesel::worker::{Worker, RESULT_GRACE};
use batchframework_diesel::{OperationFilter, OperationResult, Status};
use batchframework_tests::forwarder::Forwarder;
use batchframework_tests::TestDatabase;

use super::common::{
    check_every_operation_finished_once, count, pool, reconnects, redirect, registry, wait_for,
    wait_for_finished, FaultBackend, EXECUTIONS, FINISHED, PAUSE,
};

const THREADS: usize = 3;

/// A forwarder to the test database's server, and the database's URL through it.
fn forwarder<B: FaultBackend>(db: &TestDatabase) -> (Forwarder, String) {
    let (_, target) = redirect(&db.url, "127.0.0.1:1".parse().unwrap(), B::DEFAULT_PORT);
    let forwarder = Forwarder::start(target);
    let (url, _) = redirect(&db.url, forwarder.address(), B::DEFAULT_PORT);
    (forwarder, B::plaintext(&url))
}

/// A started worker of `THREADS` threads on `url`, with a 3-second lease, so that an operation
/// it loses track of is visible within the test's time (taken over after the lease, which idle
/// threads look for every poll, 200 ms); `kills.rs` covers waking idle threads by LISTEN alone.
fn worker<B: FaultBackend>(
    registry: &Arc<batchframework_diesel::registry::Registry<B::Connection>>,
    url: &str,
) -> Worker<B::Connection> {
    Worker::new(Arc::clone(registry), pool::<B>(url, THREADS as u32 + 1))
        .batch_size(2)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(200))
}

pub(crate) fn cutting_every_connection_at_a_proxy<B: FaultBackend>() {
    const OPERATIONS: usize = 1_500;
    let started = Instant::now();
    let (db, mut conn) = crate::worker::set_up::<B>();
    let (forwarder, url) = forwarder::<B>(&db);
    let registry = registry::<B>(PAUSE, None);
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = worker::<B>(&registry, &url).start(THREADS).unwrap();
    for threshold in [300, 700, 1_100] {
        wait_for(
            &format!("{threshold} runs"),
            Duration::from_secs(30),
            || count::<B>(&mut conn, EXECUTIONS) >= threshold,
        );
        let cut = forwarder.cut();
        assert!(cut >= 1, "no connection was open to cut");
        println!("cut {cut} connections at {threshold} runs");
        assert!(!handle.is_stopping(), "the worker stopped after a cut");
    }
    wait_for_finished::<B>(&mut conn, &handle, OPERATIONS, Duration::from_secs(60));
    wait_for(
        "every worker thread to wait for work",
        Duration::from_secs(20),
        || handle.idle_threads() == THREADS,
    );
    let cut = forwarder.cut();
    for _ in 0..10 {
        registry.run(&mut conn, "record", RunArgs::new()).unwrap();
    }
    let back = wait_for(
        "work queued after an idle worker's connections were cut to run",
        Duration::from_secs(20),
        || count::<B>(&mut conn, FINISHED) == OPERATIONS as i64 + 10,
    );
    println!("cut {cut} idle connections: new work done in {back:?}");
    assert!(
        !handle.is_stopping(),
        "the worker stopped after the idle cut"
    );
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    let tally = check_every_operation_finished_once::<B>(&mut conn, OPERATIONS + 10);
    println!(
        "{}: {stats:?}; {} runs, {} operations ran twice; {} connections accepted; {:?} in all",
        B::NAME,
        tally.executions,
        tally.twice,
        forwarder.accepted(),
        started.elapsed()
    );
    assert!(reconnects(&stats) >= 4, "{stats:?}");
}

/// How long the outage lasts: several of the backoff's steps (100 ms doubling), more than two
/// of the pool's `connection_timeout`s, and twice the lease of [`worker`].
const OUTAGE: Duration = Duration::from_secs(6);

/// Starts an outage: every connection cut, every new one refused.
fn go_down(forwarder: &Forwarder) -> Instant {
    forwarder.refuse(true);
    forwarder.cut();
    Instant::now()
}

pub(crate) fn a_long_outage_is_ridden_through<B: FaultBackend>() {
    const OPERATIONS: usize = 600;
    let (db, mut conn) = crate::worker::set_up::<B>();
    let (forwarder, url) = forwarder::<B>(&db);
    let registry = registry::<B>(PAUSE, None);
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = worker::<B>(&registry, &url).start(THREADS).unwrap();
    wait_for("100 runs", Duration::from_secs(30), || {
        count::<B>(&mut conn, EXECUTIONS) >= 100
    });
    let down = go_down(&forwarder);
    while down.elapsed() < OUTAGE {
        assert!(
            !handle.is_stopping(),
            "the worker stopped {:?} into an outage",
            down.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tries = forwarder.refused();
    assert!(
        tries >= 3,
        "the worker tried to reconnect only {tries} times in {OUTAGE:?}"
    );
    let during = count::<B>(&mut conn, EXECUTIONS);
    forwarder.refuse(false);
    let up = Instant::now();
    let resumed = wait_for("runs to resume", Duration::from_secs(20), || {
        count::<B>(&mut conn, EXECUTIONS) > during
    });
    wait_for_finished::<B>(&mut conn, &handle, OPERATIONS, Duration::from_secs(60));
    assert!(!handle.is_stopping(), "the worker stopped after the outage");
    let drained = up.elapsed();
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    let tally = check_every_operation_finished_once::<B>(&mut conn, OPERATIONS);
    println!(
        "{}: a {OUTAGE:?} outage, {tries} connections refused; runs resumed {resumed:?} after \
         it, drained {drained:?} after it; {stats:?}; {} operations ran twice",
        B::NAME,
        tally.twice
    );
    assert!(
        reconnects(&stats) > THREADS,
        "every thread and the keeper reconnected: {stats:?}"
    );
}

pub(crate) fn give_up_after_stops_a_worker_left_without_a_database<B: FaultBackend>() {
    const OPERATIONS: usize = 300;
    const PATIENCE: Duration = Duration::from_secs(3);
    let (db, mut conn) = crate::worker::set_up::<B>();
    let (forwarder, url) = forwarder::<B>(&db);
    let registry = registry::<B>(PAUSE, None);
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = worker::<B>(&registry, &url)
        .lease(Duration::from_secs(2))
        .give_up_after(PATIENCE)
        .start(THREADS)
        .unwrap();
    wait_for("50 runs", Duration::from_secs(30), || {
        count::<B>(&mut conn, EXECUTIONS) >= 50
    });
    let down = go_down(&forwarder);
    let gave_up = wait_for("the worker to give up", Duration::from_secs(30), || {
        handle.is_stopping()
    });
    assert!(
        gave_up >= PATIENCE,
        "the worker gave up {gave_up:?} into the outage, before its {PATIENCE:?}"
    );
    let error = handle
        .shutdown(Duration::from_secs(5))
        .expect_err("a worker that gave up returns the database error");
    assert!(
        matches!(
            error,
            batchframework_diesel::Error::Database(_) | batchframework_diesel::Error::Pool(_)
        ),
        "{error:?}"
    );
    println!(
        "{}: gave up {gave_up:?} into the outage ({:?} after the cut) with: {error}",
        B::NAME,
        down.elapsed()
    );
    forwarder.refuse(false);
    // What it held is taken over after its lease by another worker, straight to the server.
    let rescued = rescue::<B>(&db, &registry, &mut conn);
    println!("{}: {rescued}", B::NAME);
}

pub(crate) fn shutdown_during_an_outage_returns_in_time<B: FaultBackend>() {
    const OPERATIONS: usize = 300;
    let (db, mut conn) = crate::worker::set_up::<B>();
    let (forwarder, url) = forwarder::<B>(&db);
    let registry = registry::<B>(PAUSE, None);
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = worker::<B>(&registry, &url)
        .lease(Duration::from_secs(2))
        .start(THREADS)
        .unwrap();
    wait_for("50 runs", Duration::from_secs(30), || {
        count::<B>(&mut conn, EXECUTIONS) >= 50
    });
    go_down(&forwarder);
    wait_for(
        "the worker to try to reconnect",
        Duration::from_secs(20),
        || forwarder.refused() >= 2,
    );
    let timeout = Duration::from_secs(1);
    let asked = Instant::now();
    let result = handle.shutdown(timeout);
    let took = asked.elapsed();
    println!(
        "{}: shutdown during an outage took {took:?}: {result:?}",
        B::NAME
    );
    assert!(
        took <= timeout + RESULT_GRACE + Duration::from_secs(3),
        "a shutdown with a {timeout:?} timeout took {took:?} during an outage"
    );
    // Results it could not write are not kept quiet.
    assert!(
        matches!(
            result,
            Ok(_) | Err(batchframework_diesel::Error::ResultsNotWritten { .. })
        ),
        "{result:?}"
    );
    forwarder.refuse(false);
    let rescued = rescue::<B>(&db, &registry, &mut conn);
    println!("{}: {rescued}", B::NAME);
}

/// After a worker stopped during an outage: another worker, straight to the server and with a
/// short lease, runs what is left, including what the stopped worker held (once its lease has
/// expired). Every operation ends finished, none ran more than twice; those the stopped worker
/// held end as its lost attempts allow. Returns what happened, for the report.
fn rescue<B: FaultBackend>(
    db: &TestDatabase,
    registry: &Arc<batchframework_diesel::registry::Registry<B::Connection>>,
    conn: &mut B::Connection,
) -> String {
    let total = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM batchframework_batchoperation",
    );
    let rescuer = Worker::new(Arc::clone(registry), B::pool(db, 2))
        .name("rescuer")
        .lease(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        rescuer.run_until_idle(1).unwrap();
        if count::<B>(conn, FINISHED) == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "operations never finished after the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = OperationFilter::new().load(conn).unwrap();
    let failed: Vec<String> = all
        .iter()
        .filter(|op| op.result() != OperationResult::Successful)
        .map(|op| format!("#{} {}", op.id(), op.output_data_json()))
        .collect();
    assert!(all.iter().all(|op| op.status() == Status::Finished));
    let thrice = count::<B>(
        conn,
        "SELECT COUNT(*) AS v FROM (SELECT operation_id FROM executions \
         GROUP BY operation_id HAVING COUNT(*) > 2) t",
    );
    assert_eq!(thrice, 0, "operations that ran more than twice");
    format!(
        "after the rescue all {total} finished; {} not successful: {failed:?}",
        failed.len()
    )
}

/// The first claim (a transaction that reads `FOR UPDATE SKIP LOCKED`) after the trap is set
/// commits, and its reply is lost with its connection: the server marked operations `running`
/// for this worker, and the worker never learned which. They must still run, once, and finish
/// `successful`, not wait out a lease and end as "worker lost" (they have one attempt).
pub(crate) fn a_claim_whose_commit_reply_is_lost_still_runs<B: FaultBackend>() {
    lost_commit_reply::<B>(b"SKIP LOCKED", "a claim");
}

/// The first group of results (the keeper's UPDATE, the only statement that names
/// `finished_datetime` unquoted: `= CASE id ...`, or on PostgreSQL `= given.finished_at`) after
/// the trap is set commits, and its reply is lost with the keeper's connection: the keeper
/// writes the group again on a new connection. The results are there once, and the worker counts them as
/// succeeded, not as taken over by another worker (`fenced`).
pub(crate) fn a_result_whose_commit_reply_is_lost_is_counted_once<B: FaultBackend>() {
    lost_commit_reply::<B>(b" finished_datetime = ", "a group of results");
}

fn lost_commit_reply<B: FaultBackend>(arm: &[u8], what: &str) {
    const OPERATIONS: usize = 200;
    let (db, mut conn) = crate::worker::set_up::<B>();
    let (forwarder, url) = forwarder::<B>(&db);
    let registry = registry::<B>(PAUSE, None);
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    // Set before the worker starts: PostgreSQL sends a statement's text once per connection
    // (then only its prepared name), so the trap must see the first.
    forwarder.trap_reply(arm, b"COMMIT");
    let handle = worker::<B>(&registry, &url)
        .lease(Duration::from_secs(2))
        .start(THREADS)
        .unwrap();
    wait_for(
        &format!("the reply to {what}'s commit to be swallowed"),
        Duration::from_secs(20),
        || forwarder.trapped() == 1,
    );
    let drained = wait_for_finished::<B>(&mut conn, &handle, OPERATIONS, Duration::from_secs(40));
    assert!(!handle.is_stopping(), "the worker stopped");
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    println!(
        "{}: {what}'s commit reply lost; drained {drained:?} after; {stats:?}",
        B::NAME
    );
    let tally = check_every_operation_finished_once::<B>(&mut conn, OPERATIONS);
    println!(
        "{} runs, {} operations ran twice",
        tally.executions, tally.twice
    );
    assert_eq!(
        (stats.succeeded, stats.fenced),
        (OPERATIONS, 0),
        "every operation counted once as succeeded: {stats:?}"
    );
}
