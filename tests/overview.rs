//! What operators ask first, on every backend: due, delayed and running counts per queue, a queue's lag,
//! failures in a time window, and the size of the history as the database estimates it.

use batchframework_diesel::overview::{
    estimated_total, oldest_due, queue_counts, Count, QueueCounts,
};
use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::{Duration, SubsecRound, Utc};
use diesel::connection::SimpleConnection;

use crate::queries::set_timestamp;

fn pending<B: TestBackend>(conn: &mut B::Connection, queue: &str) -> BatchOperation {
    BatchOperation::create_asynchronous("work")
        .queue(queue)
        .insert(conn)
        .unwrap()
}

fn delayed<B: TestBackend>(conn: &mut B::Connection, queue: &str, by: Duration) {
    BatchOperation::create_asynchronous("work")
        .queue(queue)
        .run_after(Utc::now() + by)
        .insert(conn)
        .unwrap();
}

fn queue_counts_are_due_delayed_and_running_per_queue_and_leave_history_out<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    assert_eq!(queue_counts(&mut conn, 100).unwrap(), []);
    pending::<B>(&mut conn, "mail");
    pending::<B>(&mut conn, "mail");
    delayed::<B>(&mut conn, "mail", Duration::hours(-1)); // due since an hour
    let mut started = pending::<B>(&mut conn, "mail");
    started.mark_as_running(&mut conn).unwrap();
    delayed::<B>(&mut conn, "reports", Duration::hours(1));
    let mut done = pending::<B>(&mut conn, "reports");
    done.mark_as_running(&mut conn).unwrap();
    done.finish(&mut conn).unwrap();
    // A queue with running work only, and one with an empty name.
    pending::<B>(&mut conn, "audit")
        .mark_as_running(&mut conn)
        .unwrap();
    pending::<B>(&mut conn, "");

    let counts = |queue: &str, due, delayed, running| QueueCounts {
        queue: queue.to_owned(),
        due: Count::Exact(due),
        delayed: Count::Exact(delayed),
        running: Count::Exact(running),
    };
    assert_eq!(
        queue_counts(&mut conn, 100).unwrap(),
        [
            counts("", 1, 0, 0),
            counts("audit", 0, 0, 1),
            counts("mail", 3, 0, 1),
            counts("reports", 0, 1, 0),
        ]
    );
}

/// Counting stops one past the limit: exact up to it, "at least the limit" beyond, the due
/// figure (a sum of two counts) included.
fn queue_counts_stop_at_the_limit<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    for _ in 0..3 {
        pending::<B>(&mut conn, "mail");
        delayed::<B>(&mut conn, "mail", Duration::hours(1));
    }
    delayed::<B>(&mut conn, "mail", Duration::hours(-1));
    for _ in 0..2 {
        pending::<B>(&mut conn, "reports")
            .mark_as_running(&mut conn)
            .unwrap();
    }
    let mail = |conn: &mut B::Connection, limit| queue_counts(conn, limit).unwrap()[0].clone();
    let at_4 = mail(&mut conn, 4);
    assert_eq!(
        (at_4.due, at_4.delayed, at_4.running),
        (Count::Exact(4), Count::Exact(3), Count::Exact(0))
    );
    // 3 immediate and 1 due delayed, each within 3: their sum still stops at the limit.
    let at_3 = mail(&mut conn, 3);
    assert_eq!(
        (at_3.due, at_3.delayed),
        (Count::AtLeast(3), Count::Exact(3))
    );
    let at_2 = mail(&mut conn, 2);
    assert_eq!(
        (at_2.due, at_2.delayed),
        (Count::AtLeast(2), Count::AtLeast(2))
    );
    assert_eq!(
        (at_2.due.to_string(), at_2.delayed.to_string()),
        ("2+".to_owned(), "2+".to_owned())
    );
    let reports = &queue_counts(&mut conn, 2).unwrap()[1];
    assert_eq!(
        (reports.queue.as_str(), reports.running),
        ("reports", Count::Exact(2))
    );
    let reports = &queue_counts(&mut conn, 1).unwrap()[1];
    assert_eq!(reports.running, Count::AtLeast(1));
}

fn a_queues_lag_starts_when_its_oldest_due_operation_became_due<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    assert_eq!(oldest_due(&mut conn, "default").unwrap(), None);
    // Not due yet: no lag.
    BatchOperation::create_asynchronous("work")
        .run_after(Utc::now() + Duration::hours(1))
        .insert(&mut conn)
        .unwrap();
    assert_eq!(oldest_due(&mut conn, "default").unwrap(), None);

    // Immediate work waits since it was created.
    let immediate = pending::<B>(&mut conn, "default");
    let created = (Utc::now() - Duration::minutes(5)).trunc_subsecs(6);
    set_timestamp::<B>(&mut conn, immediate.id(), "created_datetime", created);
    assert_eq!(oldest_due(&mut conn, "default").unwrap(), Some(created));

    // Delayed work waits since it became due, which can be earlier.
    let due_at = Utc::now() - Duration::minutes(20);
    let delayed = BatchOperation::create_asynchronous("work")
        .run_after(due_at)
        .insert(&mut conn)
        .unwrap();
    assert_eq!(
        oldest_due(&mut conn, "default").unwrap(),
        delayed.run_after()
    );
    assert_eq!(oldest_due(&mut conn, "elsewhere").unwrap(), None);
}

fn failures_are_counted_in_a_window_of_finish_times<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut ids = Vec::new();
    for minutes_ago in [5, 50, 500] {
        let mut op = BatchOperation::create_synchronous("import")
            .insert(&mut conn)
            .unwrap();
        op.finish_failed(&mut conn, &"broken").unwrap();
        let at = Utc::now() - Duration::minutes(minutes_ago);
        set_timestamp::<B>(&mut conn, op.id(), "finished_datetime", at);
        ids.push(op.id());
    }
    let mut ok = BatchOperation::create_synchronous("import")
        .insert(&mut conn)
        .unwrap();
    ok.finish(&mut conn).unwrap();

    let failed = OperationFilter::new().result(OperationResult::Failed);
    let last_hour = failed
        .clone()
        .finished_after(Utc::now() - Duration::hours(1));
    assert_eq!(last_hour.count(&mut conn).unwrap(), 2);
    let earlier = failed.finished_before(Utc::now() - Duration::hours(1));
    let loaded: Vec<i64> = earlier
        .load(&mut conn)
        .unwrap()
        .iter()
        .map(BatchOperation::id)
        .collect();
    assert_eq!(loaded, [ids[2]]);
}

fn the_history_is_estimated_from_the_databases_statistics<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    for _ in 0..50 {
        pending::<B>(&mut conn, "default");
    }
    let analyze = match B::NAME {
        "postgres" => "ANALYZE batchframework_batchoperation",
        "mysql" => "ANALYZE TABLE batchframework_batchoperation",
        _ => "ANALYZE",
    };
    conn.batch_execute(analyze).unwrap();
    let estimate = estimated_total(&mut conn)
        .unwrap()
        .expect("statistics were gathered");
    // Exact on PostgreSQL and SQLite at this size; InnoDB samples pages.
    assert!((25..=100).contains(&estimate), "{estimate}");
}

backend_tests!(
    queue_counts_are_due_delayed_and_running_per_queue_and_leave_history_out,
    queue_counts_stop_at_the_limit,
    a_queues_lag_starts_when_its_oldest_due_operation_became_due,
    failures_are_counted_in_a_window_of_finish_times,
    the_history_is_estimated_from_the_databases_statistics,
);
