//! Cancelling a fresh operation while a running worker claims it, 200 times, on every backend:
//! each round queues one operation and removes it with `remove_pending` a moment later (a
//! delay that cycles through 0-15 ms, so that in some rounds the claim comes first and in others
//! the cancel), while a started worker polls every 10 ms (and is woken at once by the insert's
//! notification on PostgreSQL). Each round ends one of two ways: removed (1) and never run, or
//! not removed (0) and run exactly once; never both, never neither, and no error at all, from
//! the cancel or from the worker (a deadlock victim, SQLite's "database is locked"), which
//! `worker.rs` cannot promise for a drain's 200 operations at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchframework_diesel::registry::RunArgs;
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter, Status};

use super::common::{check_every_operation_finished_once, count, registry, wait_for, FaultBackend};

const ROUNDS: i64 = 200;

pub(crate) fn cancel_racing_a_claim_200_times<B: FaultBackend>() {
    let started = Instant::now();
    let (db, mut conn) = crate::worker::set_up::<B>();
    let registry = registry::<B>(Duration::ZERO, None);
    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 3))
        .batch_size(1)
        .poll_interval(Duration::from_millis(10))
        .start(2)
        .unwrap();
    let (mut removed, mut ran) = (0, 0);
    for round in 0..ROUNDS {
        let post = ContextRef::new("posts", round);
        let op = registry
            .run(&mut conn, "record", RunArgs::new().context_object(&post))
            .unwrap()
            .operation;
        std::thread::sleep(Duration::from_millis(
            u64::try_from(round % 16).unwrap_or(0),
        ));
        let outcome = OperationFilter::new()
            .context_object(&post)
            .remove_pending(&mut conn)
            .unwrap_or_else(|e| panic!("round {round}: remove_pending failed: {e}"));
        match outcome {
            1 => {
                removed += 1;
                assert!(
                    BatchOperation::find(&mut conn, op.id()).is_err(),
                    "round {round}: removed, yet still there"
                );
            }
            0 => {
                ran += 1;
                wait_for(
                    &format!("round {round}: the operation not removed to finish"),
                    Duration::from_secs(20),
                    || {
                        BatchOperation::find(&mut conn, op.id())
                            .map(|stored| stored.status() == Status::Finished)
                            .unwrap_or(false)
                    },
                );
            }
            other => panic!("round {round}: remove_pending removed {other} operations"),
        }
        assert!(!handle.is_stopping(), "round {round}: the worker stopped");
    }
    let stats = handle
        .shutdown(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the worker met an error: {e}"));
    assert_eq!(stats.succeeded, ran, "{stats:?}");
    assert_eq!(
        (stats.failed, stats.retried, stats.lost, stats.fenced),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    let tally = check_every_operation_finished_once::<B>(&mut conn, ran);
    assert_eq!(
        tally.executions,
        i64::try_from(ran).unwrap_or(0),
        "each ran once"
    );
    let unrun_and_gone = count::<B>(
        &mut conn,
        "SELECT COUNT(*) AS v FROM executions e WHERE NOT EXISTS \
         (SELECT 1 FROM batchframework_batchoperation o WHERE o.id = e.operation_id)",
    );
    assert_eq!(unrun_and_gone, 0, "a removed operation ran");
    println!(
        "{}: {removed} removed, {ran} ran, in {:?}",
        B::NAME,
        started.elapsed()
    );
}
