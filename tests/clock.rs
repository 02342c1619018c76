//! Workers run on the database server's clock, not their machine's: a worker whose machine's
//! clock is two hours fast neither starts work delayed by one hour nor stamps its heartbeats and
//! finishes two hours ahead, so workers on machines whose clocks disagree agree on what is due
//! and whose lease has expired.
//!
//! Only the server backends have a clock of their own; SQLite runs in the worker's process, on
//! its machine's clock.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::TestBackend;
use chrono::Utc;

use crate::worker::{record, set_up};

fn a_worker_with_a_fast_clock_keeps_the_databases_time<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry: Arc<Registry<B::Connection>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("record")
                    .asynchronous()
                    .action(action_fn("record", record::<B>)),
            )
            .build()
            .unwrap(),
    );
    let later = registry
        .run(
            &mut conn,
            "record",
            RunArgs::new().delay(Duration::from_secs(3600)),
        )
        .unwrap()
        .operation;
    let now = registry
        .run(&mut conn, "record", RunArgs::new())
        .unwrap()
        .operation;

    let stats = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .local_clock_skew(chrono::Duration::hours(2))
        .run_until_idle(1)
        .unwrap();
    assert_eq!(stats.succeeded, 1, "{stats:?}");

    let later = BatchOperation::find(&mut conn, later.id()).unwrap();
    assert_eq!(later.status(), Status::Unprocessed, "not due for an hour");
    let now = BatchOperation::find(&mut conn, now.id()).unwrap();
    assert_eq!(now.result(), OperationResult::Successful);
    for stamp in [now.started_running_datetime(), now.finished_datetime()] {
        let stamp = stamp.unwrap();
        let off = (stamp - Utc::now()).num_seconds().abs();
        assert!(off < 60, "stamped {stamp}, {off} s from now");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    #[test]
    fn a_worker_with_a_fast_clock_keeps_the_databases_time() {
        super::a_worker_with_a_fast_clock_keeps_the_databases_time::<batchframework_tests::Postgres>(
        );
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    #[test]
    fn a_worker_with_a_fast_clock_keeps_the_databases_time() {
        super::a_worker_with_a_fast_clock_keeps_the_databases_time::<batchframework_tests::Mysql>();
    }
}
