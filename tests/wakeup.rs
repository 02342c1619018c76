//! PostgreSQL wake-ups: the migrations' triggers NOTIFY new due work and a started worker's
//! keeper LISTENs, so idle threads start work long before their next poll. Between its duties
//! the keeper sleeps on its listening connection's socket: an idle worker wakes a few times a
//! second, and a listening connection that dies is replaced and listens again.
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
    use diesel::{Connection, PgConnection};
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

    /// An idle worker's keeper sleeps on its socket: over ten seconds the worker (two threads
    /// polling every second, the keeper waking for its duties at most twice a second) wakes a
    /// few dozen times. A keeper looking for notifications every 5 ms would wake 2,000 times.
    #[test]
    fn an_idle_worker_wakes_a_few_times_a_second() {
        // A database of its own: another test's new work would wake this keeper.
        let db = batchframework_tests::postgres_database();
        let mut conn = PgConnection::establish(&db.url).unwrap();
        batchframework_diesel::run_migrations(&mut conn).unwrap();
        let handle = Worker::new(registry(), B::pool(&db, 3))
            .poll_interval(Duration::from_secs(1))
            .start(2)
            .unwrap();
        eventually("both threads to go idle", || handle.idle_threads() == 2);
        let before = handle.stats().wakeups;
        std::thread::sleep(Duration::from_secs(10));
        let wakeups = handle.stats().wakeups - before;
        handle.shutdown(Duration::from_secs(10)).unwrap();
        // 2 threads x 10 polls + 20 keeper wake-ups, with room for a heartbeat or a clock sync.
        assert!(
            (10..=60).contains(&wakeups),
            "an idle worker woke {wakeups} times in 10 s"
        );
    }

    /// The keeper's listening connection is terminated by the server (with every other
    /// connection of the worker's pool): the keeper notices at once, takes a new connection,
    /// listens on it again and finds its socket, and new work still wakes the worker long
    /// before its hourly poll.
    #[test]
    fn a_terminated_listening_connection_is_replaced() {
        let (db, mut conn) = set_up::<B>();
        let registry = registry();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("bf_wake_{}_{nanos}", std::process::id());
        let pool = Pool::builder()
            .max_size(3)
            .build(ConnectionManager::<PgConnection>::new(format!(
                "{}&application_name={name}",
                db.url
            )))
            .unwrap();
        let handle = Worker::new(Arc::clone(&registry), pool)
            .poll_interval(AN_HOUR)
            .start(2)
            .unwrap();
        eventually("both threads to go idle", || handle.idle_threads() == 2);
        let terminated = B::select_i64s(
            &mut conn,
            &format!(
                "SELECT COUNT(pg_terminate_backend(pid)) AS v FROM pg_stat_activity \
                 WHERE application_name = '{name}'"
            ),
        );
        assert!(terminated[0] >= Some(3), "{terminated:?}");
        eventually("the keeper to reconnect", || handle.stats().reconnects >= 1);
        eventually("both threads to go idle again", || {
            handle.idle_threads() == 2
        });
        registry.run(&mut conn, "woken", RunArgs::new()).unwrap();
        eventually("the new operation to run", || handle.stats().succeeded == 1);
        let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
        assert_eq!(stats.succeeded, 1, "{stats:?}");
    }
}
