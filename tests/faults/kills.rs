//! Each of a started worker's connections killed by the server in turn, during a drain: every
//! worker thread's (on which its claims and its actions run), then the keeper's (its group
//! commits, heartbeats and, on PostgreSQL, its LISTEN), once while it writes results and once
//! while the worker is idle, so that only a keeper listening again (or polling) can start the
//! work queued after it. PostgreSQL ends them with `pg_terminate_backend`, MariaDB with `KILL`:
//! what a failover or an administrator does. The worker must not stop, must reconnect each,
//! and must finish every operation once.
//!
//! The worker threads' sessions are the ones the action reports (`pg_backend_pid()`,
//! `CONNECTION_ID()`), per thread; the keeper's is the worker's one other session (the pool
//! holds exactly one connection per thread and one for the keeper): PostgreSQL's are those
//! with the pool's `application_name`, MariaDB's those on the test's database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchframework_diesel::registry::RunArgs;
use batchframework_diesel::worker::Worker;

use super::common::{
    check_every_operation_finished_once, count, pool, reconnects, registry, unique_tag, wait_for,
    wait_for_finished, worker_sessions, FaultBackend, Sessions, EXECUTIONS, FINISHED, PAUSE,
};

const OPERATIONS: usize = 1_500;
const THREADS: usize = 3;

pub(crate) fn killing_each_connection_in_turn<B: FaultBackend>() {
    let started = Instant::now();
    let (db, mut conn) = crate::worker::set_up::<B>();
    let tag = unique_tag();
    let url = B::tagged(&db.url, &tag);
    let sessions = Arc::new(Sessions::default());
    let registry = registry::<B>(PAUSE, Some(Arc::clone(&sessions)));
    crate::worker::queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = Worker::new(Arc::clone(&registry), pool::<B>(&url, THREADS as u32 + 1))
        .batch_size(2)
        // Where new work is announced, idle threads wait for the announcement alone: the
        // work queued after the keeper's connection dies runs only if the keeper listens again.
        .poll_interval(if B::LISTENS {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(50)
        })
        .start(THREADS)
        .unwrap();
    let mut killed = HashSet::new();

    for thread in 0..THREADS {
        let mut session = 0;
        wait_for(
            &format!("worker thread {thread} to run an action"),
            Duration::from_secs(20),
            || match sessions.threads().get(thread) {
                Some(&id) if !killed.contains(&id) => {
                    session = id;
                    true
                }
                _ => false,
            },
        );
        let before = count::<B>(&mut conn, EXECUTIONS);
        B::kill(&mut conn, session);
        killed.insert(session);
        let back = wait_for(
            &format!("worker thread {thread} to run actions on a new connection"),
            Duration::from_secs(30),
            || {
                sessions.threads()[thread] != session
                    && count::<B>(&mut conn, EXECUTIONS) >= before + 50
            },
        );
        assert!(
            !handle.is_stopping(),
            "the worker stopped after a thread's connection died"
        );
        println!("killed worker thread {thread}'s session {session}: back in {back:?}");
    }

    let keeper = keeper_session::<B>(&mut conn, &url, &tag, &sessions, &killed);
    let finished = count::<B>(&mut conn, FINISHED);
    assert!(
        finished < OPERATIONS as i64 - 100,
        "the drain went too fast for the keeper's turn: {finished} already finished"
    );
    B::kill(&mut conn, keeper);
    killed.insert(keeper);
    let back = wait_for(
        "results to be written again after the keeper's connection died",
        Duration::from_secs(30),
        || count::<B>(&mut conn, FINISHED) >= finished + 100,
    );
    assert!(
        !handle.is_stopping(),
        "the worker stopped after the keeper's connection died"
    );
    println!("killed the keeper's session {keeper} while it wrote results: back in {back:?}");

    wait_for_finished::<B>(&mut conn, &handle, OPERATIONS, Duration::from_secs(60));

    // The keeper's connection dies while every thread waits for work.
    wait_for(
        "every worker thread to wait for work",
        Duration::from_secs(20),
        || handle.idle_threads() == THREADS,
    );
    let keeper = keeper_session::<B>(&mut conn, &url, &tag, &sessions, &killed);
    B::kill(&mut conn, keeper);
    killed.insert(keeper);
    for _ in 0..10 {
        registry.run(&mut conn, "record", RunArgs::new()).unwrap();
    }
    let back = wait_for(
        "work queued after the idle keeper's connection died to run",
        Duration::from_secs(20),
        || count::<B>(&mut conn, FINISHED) == OPERATIONS as i64 + 10,
    );
    println!("killed the idle keeper's session {keeper}: new work done in {back:?}");
    assert!(
        !handle.is_stopping(),
        "the worker stopped after the idle keeper's connection died"
    );

    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    let tally = check_every_operation_finished_once::<B>(&mut conn, OPERATIONS + 10);
    println!(
        "{}: killed {} sessions; {stats:?}; {} runs, {} operations ran twice; {:?} in all",
        B::NAME,
        killed.len(),
        tally.executions,
        tally.twice,
        started.elapsed()
    );
    assert!(
        reconnects(&stats) >= THREADS + 2,
        "each killed connection was replaced: {stats:?}"
    );
}

/// The keeper's session: the worker's one session that is no thread's (once each thread has run
/// an action on its current connection).
fn keeper_session<B: FaultBackend>(
    conn: &mut B::Connection,
    url: &str,
    tag: &str,
    sessions: &Sessions,
    killed: &HashSet<i64>,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let threads = sessions.threads();
        let others: Vec<i64> = worker_sessions::<B>(conn, url, tag, killed)
            .into_iter()
            .filter(|id| !threads.contains(id))
            .collect();
        if let [keeper] = others[..] {
            return keeper;
        }
        assert!(
            Instant::now() < deadline,
            "no single keeper session: the worker's sessions other than the threads' ({threads:?}) \
             are {others:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
