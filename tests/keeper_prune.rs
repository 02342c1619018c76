//! Pruning by a started worker's keeper (`Worker::prune_finished_after`): old finished
//! operations go, recent and live ones stay, and one worker at a time prunes.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::__private::{try_lock_pruning, unlock_pruning};
use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationFilter, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::Utc;
use serde_json::Value;

use crate::queries::set_timestamp;
use crate::worker::eventually;

fn registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("noop")
                    .asynchronous()
                    .action(action_fn("noop", |_| Ok(Value::Null))),
            )
            .build()
            .unwrap(),
    )
}

/// `count` operations finished `hours_ago` hours ago.
fn finished<B: TestBackend>(conn: &mut B::Connection, count: usize, hours_ago: i64) -> Vec<i64> {
    (0..count)
        .map(|_| {
            let mut op = BatchOperation::create_synchronous("import")
                .insert(conn)
                .unwrap();
            op.finish(conn).unwrap();
            let at = Utc::now() - chrono::Duration::hours(hours_ago);
            set_timestamp::<B>(conn, op.id(), "finished_datetime", at);
            op.id()
        })
        .collect()
}

fn finished_count<B: TestBackend>(conn: &mut B::Connection) -> i64 {
    OperationFilter::new()
        .status(Status::Finished)
        .count(conn)
        .unwrap()
}

fn a_started_worker_prunes_old_finished_operations<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    finished::<B>(&mut conn, 1_500, 3); // more than one batch
    let recent = finished::<B>(&mut conn, 2, 0);
    let pending = BatchOperation::create_asynchronous("not-ours")
        .insert(&mut conn)
        .unwrap();
    let handle = Worker::new(registry::<B>(), B::pool(&db, 2))
        .prune_finished_after(Duration::from_secs(3_600))
        .poll_interval(Duration::from_millis(20))
        .start(1)
        .unwrap();
    eventually("the old operations to be pruned", || {
        finished_count::<B>(&mut conn) == 2
    });
    handle.shutdown(Duration::from_secs(10)).unwrap();
    for id in recent.into_iter().chain([pending.id()]) {
        BatchOperation::find(&mut conn, id).unwrap();
    }
}

/// While another session holds the pruning lock, a worker's keeper does not prune (it tries at
/// once when it starts, and again a minute later).
fn a_worker_does_not_prune_while_another_holds_the_lock<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    finished::<B>(&mut conn, 3, 3);
    let mut holder = B::connect(&db);
    assert!(try_lock_pruning(&mut holder).unwrap());
    let registry = registry::<B>();
    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .prune_finished_after(Duration::from_secs(3_600))
        .poll_interval(Duration::from_millis(20))
        .start(1)
        .unwrap();
    // The keeper tries the lock right after it writes a result: one written proves it tried.
    let marker = registry
        .run(&mut conn, "noop", RunArgs::new())
        .unwrap()
        .operation;
    eventually("the marker operation to finish", || {
        BatchOperation::find(&mut conn, marker.id())
            .unwrap()
            .status()
            == Status::Finished
    });
    handle.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(finished_count::<B>(&mut conn), 4, "nothing was pruned");
    unlock_pruning(&mut holder).unwrap();
}

/// The lock is one session's at a time: a second session cannot take it until the first
/// releases it (PostgreSQL's advisory locks, MySQL/MariaDB's named locks).
fn the_pruning_lock_is_one_sessions_at_a_time<B: TestBackend>() {
    let (db, _conn) = migrated::<B>();
    let mut first = B::connect(&db);
    let mut second = B::connect(&db);
    assert!(try_lock_pruning(&mut first).unwrap());
    assert!(!try_lock_pruning(&mut second).unwrap());
    unlock_pruning(&mut first).unwrap();
    assert!(try_lock_pruning(&mut second).unwrap());
    unlock_pruning(&mut second).unwrap();
}

backend_tests!(a_started_worker_prunes_old_finished_operations);

/// The lock's tests: SQLite's writers take turns at one write lock, and it has no pruning lock
/// to hold.
mod lock {
    #[cfg(feature = "postgres")]
    mod postgres {
        #[test]
        fn a_worker_does_not_prune_while_another_holds_the_lock() {
            super::super::a_worker_does_not_prune_while_another_holds_the_lock::<
                batchframework_tests::Postgres,
            >();
        }

        #[test]
        fn the_pruning_lock_is_one_sessions_at_a_time() {
            super::super::the_pruning_lock_is_one_sessions_at_a_time::<
                batchframework_tests::Postgres,
            >();
        }
    }

    #[cfg(feature = "mysql")]
    mod mysql {
        #[test]
        fn a_worker_does_not_prune_while_another_holds_the_lock() {
            super::super::a_worker_does_not_prune_while_another_holds_the_lock::<
                batchframework_tests::Mysql,
            >();
        }

        #[test]
        fn the_pruning_lock_is_one_sessions_at_a_time() {
            super::super::the_pruning_lock_is_one_sessions_at_a_time::<batchframework_tests::Mysql>(
            );
        }
    }
}
