//! A worker thread whose database connection dies: the worker takes a new connection and
//! carries on (counting the reconnect), and with `give_up_after(0)` it stops instead and says
//! why, leaving what it did not get to for another worker.
//!
//! The action kills its own server session, which only the server backends can do, so these
//! tests run on PostgreSQL and MySQL/MariaDB.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::registry::{
    action_fn, ActionContext, ActionError, ActionGroup, Registry,
};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Status};
use batchframework_tests::TestBackend;
use diesel::connection::SimpleConnection;
use serde_json::Value;

use crate::worker::{drain_with_one_thread, eventually, queue, set_up};

/// Ends the connection it is given, as a database restart or a network cut would.
fn kill_own_session<B: TestBackend>(conn: &mut B::Connection) -> Result<(), ActionError> {
    let sql = if B::NAME == "postgres" {
        "SELECT pg_terminate_backend(pg_backend_pid())".to_owned()
    } else {
        let id = B::select_i64s(conn, "SELECT CONNECTION_ID() AS v")[0].unwrap_or(0);
        format!("KILL {id}")
    };
    // The statement fails as the session ends under it; that is the point.
    let _ = conn.batch_execute(&sql);
    Ok(())
}

fn a_lost_connection_is_replaced_and_the_worker_carries_on<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = cutting_registry::<B>();
    let (cut, plain) = queue_cut_then_plain::<B>(&mut conn, &registry);

    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .batch_size(1)
        .poll_interval(Duration::from_millis(20))
        .start(1)
        .unwrap();
    eventually("every operation to finish", || {
        OperationFilter::new()
            .status(Status::Finished)
            .count(&mut conn)
            .unwrap()
            == 3
    });
    assert!(!handle.is_stopping());
    let stats = handle.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(stats.succeeded, 3);
    assert!(stats.reconnects >= 1, "{stats:?}");
    for op in plain.iter().chain([&cut]) {
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!(
            (stored.status(), stored.result(), stored.attempts()),
            (Status::Finished, OperationResult::Successful, 1)
        );
    }
}

/// One `cut` operation, then two `plain` ones.
fn queue_cut_then_plain<B: TestBackend>(
    conn: &mut B::Connection,
    registry: &Registry<B::Connection>,
) -> (BatchOperation, Vec<BatchOperation>) {
    let cut = queue::<B>(conn, registry, "cut");
    let plain = (0..2)
        .map(|_| queue::<B>(conn, registry, "plain"))
        .collect();
    (cut, plain)
}

/// `cut` ends its own session; `plain` does nothing.
fn cutting_registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    Arc::new(
        Registry::builder()
            .group(ActionGroup::new("cut").asynchronous().action(action_fn(
                "cut",
                |ctx: &mut ActionContext<'_, B::Connection>| {
                    kill_own_session::<B>(ctx.conn())?;
                    Ok(Value::Null)
                },
            )))
            .group(
                ActionGroup::new("plain")
                    .asynchronous()
                    .action(action_fn("plain", |_| Ok(Value::Null))),
            )
            .build()
            .unwrap(),
    )
}

fn with_no_patience_a_lost_connection_stops_the_worker<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = cutting_registry::<B>();
    let (cut, plain) = queue_cut_then_plain::<B>(&mut conn, &registry);

    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 2))
        .batch_size(1)
        .poll_interval(Duration::from_millis(20))
        .give_up_after(Duration::ZERO)
        .start(1)
        .unwrap();
    eventually("the worker to stop on its own", || handle.is_stopping());
    let error = handle.shutdown(Duration::from_secs(10)).unwrap_err();
    assert!(
        matches!(error, batchframework_diesel::Error::Database(_)),
        "{error:?}"
    );
    // The operation whose action ran has its result: the keeper's connection was not cut.
    let stored = BatchOperation::find(&mut conn, cut.id()).unwrap();
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Successful)
    );

    // The rest was never claimed, and another worker runs it.
    let stats = drain_with_one_thread::<B>(&db, &registry);
    assert_eq!(stats.succeeded, 2);
    for op in plain {
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!((stored.status(), stored.attempts()), (Status::Finished, 1));
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    #[test]
    fn a_lost_connection_is_replaced_and_the_worker_carries_on() {
        super::a_lost_connection_is_replaced_and_the_worker_carries_on::<
            batchframework_tests::Postgres,
        >();
    }

    #[test]
    fn with_no_patience_a_lost_connection_stops_the_worker() {
        super::with_no_patience_a_lost_connection_stops_the_worker::<batchframework_tests::Postgres>(
        );
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    #[test]
    fn a_lost_connection_is_replaced_and_the_worker_carries_on() {
        super::a_lost_connection_is_replaced_and_the_worker_carries_on::<batchframework_tests::Mysql>(
        );
    }

    #[test]
    fn with_no_patience_a_lost_connection_stops_the_worker() {
        super::with_no_patience_a_lost_connection_stops_the_worker::<batchframework_tests::Mysql>();
    }
}
