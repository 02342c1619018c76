//! PostgreSQL wake-ups: the migrations' triggers NOTIFY new due work and a started worker's
//! keeper LISTENs, so idle threads start work long before their next poll.
//!
//! Each test polls only once an hour and uses a queue of its own: the suite's tests share one
//! database (a schema each), and notifications are per database, so another test's work must
//! not be what wakes this one's worker.

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;
    use std::time::Duration;

    use batchframework_diesel::registry::{action_fn, ActionGroup, Registry, RunArgs};
    use batchframework_diesel::worker::Worker;
    use batchframework_diesel::{BatchOperation, Status};
    use batchframework_tests::{Postgres as B, TestBackend};
    use diesel::connection::SimpleConnection;
    use diesel::r2d2::{ConnectionManager, Pool};
    use diesel::PgConnection;
    use serde_json::Value;

    use crate::worker::{eventually, set_up};

    const AN_HOUR: Duration = Duration::from_secs(3600);

    /// A registry whose one group runs on a queue no other test uses.
    fn registry() -> Arc<Registry<PgConnection>> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let queue = format!("wake-{}-{nanos}", std::process::id());
        Arc::new(
            Registry::builder()
                .queue(queue.clone())
                .group(
                    ActionGroup::new("woken")
                        .asynchronous()
                        .queue(queue)
                        .action(action_fn("run", |_| Ok(Value::Null))),
                )
                .build()
                .unwrap(),
        )
    }

    fn listening_channels(pool: &Pool<ConnectionManager<PgConnection>>) -> Vec<Option<i64>> {
        // Every connection of the pool at once, so the keeper's is among them.
        let mut conns: Vec<_> = (0..pool.max_size()).map(|_| pool.get().unwrap()).collect();
        conns
            .iter_mut()
            .flat_map(|conn| {
                B::select_i64s(conn, "SELECT COUNT(*) AS v FROM pg_listening_channels()")
            })
            .collect()
    }

    /// New work wakes idle threads that would otherwise sleep for an hour; on shutdown the
    /// keeper's connection goes back to the pool no longer listening.
    #[test]
    fn inserted_work_wakes_an_idle_worker() {
        let (db, mut conn) = set_up::<B>();
        let registry = registry();
        let pool = B::pool(&db, 3);
        let handle = Worker::new(Arc::clone(&registry), pool.clone())
            .poll_interval(AN_HOUR)
            .start(2)
            .unwrap();
        eventually("both threads to go idle", || handle.idle_threads() == 2);
        registry.run(&mut conn, "woken", RunArgs::new()).unwrap();
        eventually("the new operation to run", || handle.stats().succeeded == 1);
        eventually("both threads to go idle again", || {
            handle.idle_threads() == 2
        });
        registry.run(&mut conn, "woken", RunArgs::new()).unwrap();
        eventually("the second operation to run", || {
            handle.stats().succeeded == 2
        });
        handle.shutdown(Duration::from_secs(10)).unwrap();
        assert_eq!(listening_channels(&pool), vec![Some(0); 3]);
    }

    /// Work given back to the queue (here as a stopping worker releases what it did not start)
    /// wakes an idle worker too.
    #[test]
    fn released_work_wakes_an_idle_worker() {
        let (db, mut conn) = set_up::<B>();
        let registry = registry();
        let queue = registry.group("woken").unwrap().queue_name().to_owned();
        let op = BatchOperation::create_asynchronous("woken")
            .queue(&queue)
            .insert(&mut conn)
            .unwrap();
        // Held by another worker, whose lease is still good.
        conn.batch_execute(&format!(
            "UPDATE batchframework_batchoperation SET status = 'running', attempts = 1, \
             started_running_datetime = now(), locked_by = 'elsewhere', \
             heartbeat_datetime = now() WHERE id = {}",
            op.id()
        ))
        .unwrap();
        let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 3))
            .poll_interval(AN_HOUR)
            .start(2)
            .unwrap();
        eventually("both threads to go idle", || handle.idle_threads() == 2);
        assert_eq!(handle.stats().succeeded, 0);
        conn.batch_execute(&format!(
            "UPDATE batchframework_batchoperation SET status = 'unprocessed', attempts = 0, \
             started_running_datetime = NULL, locked_by = NULL, heartbeat_datetime = NULL \
             WHERE id = {}",
            op.id()
        ))
        .unwrap();
        eventually("the released operation to run", || {
            handle.stats().succeeded == 1
        });
        handle.shutdown(Duration::from_secs(10)).unwrap();
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!((stored.status(), stored.attempts()), (Status::Finished, 1));
    }
}
