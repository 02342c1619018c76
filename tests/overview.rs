//! What operators ask first, on every backend: active counts by queue and status, a queue's lag,
//! failures in a time window, and the size of the history as the database estimates it.

use batchframework_diesel::overview::{active_counts, estimated_total, oldest_due, ActiveCount};
use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Status};
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

fn active_counts_are_by_queue_and_status_and_leave_history_out<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    assert_eq!(active_counts(&mut conn).unwrap(), []);
    pending::<B>(&mut conn, "mail");
    pending::<B>(&mut conn, "mail");
    let mut started = pending::<B>(&mut conn, "mail");
    started.mark_as_running(&mut conn).unwrap();
    BatchOperation::create_asynchronous("work")
        .queue("reports")
        .run_after(Utc::now() + Duration::hours(1))
        .insert(&mut conn)
        .unwrap();
    let mut done = pending::<B>(&mut conn, "reports");
    done.mark_as_running(&mut conn).unwrap();
    done.finish(&mut conn).unwrap();

    let mut counts = active_counts(&mut conn).unwrap();
    counts.sort_by(|a, b| (&a.queue, a.status.as_str()).cmp(&(&b.queue, b.status.as_str())));
    let count = |queue: &str, status, count| ActiveCount {
        queue: queue.to_owned(),
        status,
        count,
    };
    assert_eq!(
        counts,
        [
            count("mail", Status::Running, 1),
            count("mail", Status::Unprocessed, 2),
            count("reports", Status::Unprocessed, 1),
        ]
    );
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
    active_counts_are_by_queue_and_status_and_leave_history_out,
    a_queues_lag_starts_when_its_oldest_due_operation_became_due,
    failures_are_counted_in_a_window_of_finish_times,
    the_history_is_estimated_from_the_databases_statistics,
);
