//! The operators' API on every backend: retry, cancel, pause and resume, and the queue
//! overview, including their races with workers.

use std::sync::Arc;
use std::time::Duration;

use batchframework_diesel::admin::{self, Cancelled, Count, QueueOverview, RecentCounts};
use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup};
use batchframework_diesel::registry::{Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, Error, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::{Duration as Span, Utc};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

use crate::queries::set_timestamp;
use crate::worker::{eventually, executions, queue_many, record, set_up};

/// `record` (queue `default`) and `record-elsewhere` (queue `elsewhere`) run [`record`] (a row in
/// `executions` per run); `fails` fails once, on its only attempt.
fn registry<B: TestBackend>() -> Arc<Registry<B::Connection>> {
    let record = record::<B>;
    Arc::new(
        Registry::builder()
            .queue("elsewhere")
            .group(
                ActionGroup::new("record")
                    .asynchronous()
                    .action(action_fn("record", record)),
            )
            .group(
                ActionGroup::new("record-elsewhere")
                    .asynchronous()
                    .queue("elsewhere")
                    .action(action_fn("record", record)),
            )
            .group(
                ActionGroup::new("fails")
                    .asynchronous()
                    .action(action_fn("fail", |_| {
                        Err(ActionError::with_data(json!("nope"), "failed on purpose"))
                    })),
            )
            .build()
            .unwrap(),
    )
}

/// An operation that ran and failed, as an action would leave it.
fn failed<B: TestBackend>(conn: &mut B::Connection, kind: &str) -> BatchOperation {
    let mut op = BatchOperation::create_asynchronous(kind)
        .insert(conn)
        .unwrap();
    op.mark_as_running(conn).unwrap();
    op.finish_failed(conn, &json!({"error": "first"})).unwrap();
    op
}

fn retry_queues_a_failure_again_and_keeps_its_output<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = failed::<B>(&mut conn, "import");
    let retried = admin::retry(&mut conn, op.id()).unwrap();
    assert_eq!(
        (retried.status(), retried.result(), retried.attempts()),
        (Status::Unprocessed, OperationResult::NotAvailable, 0)
    );
    assert_eq!(
        (retried.finished_datetime(), retried.run_after()),
        (None, None)
    );
    assert_eq!(
        retried.output_data::<Value>().unwrap().unwrap(),
        json!({"previous_attempts": [{"error": "first"}]})
    );
    // Pending again: a second retry is refused and changes nothing.
    let error = admin::retry(&mut conn, op.id()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::IllegalTransition {
                actual: Status::Unprocessed,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), retried);
}

fn retry_refuses_successes_and_unknown_ids<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_asynchronous("import")
        .insert(&mut conn)
        .unwrap();
    op.mark_as_running(&mut conn).unwrap();
    op.finish(&mut conn).unwrap();
    let error = admin::retry(&mut conn, op.id()).unwrap_err();
    assert!(matches!(error, Error::NotFailed { .. }), "{error:?}");
    assert!(error.to_string().contains("only failed"), "{error}");
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), op);
    let error = admin::retry(&mut conn, op.id() + 1000).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

/// A retried operation runs again, and its new output lists every earlier attempt.
fn a_retried_operation_runs_again_with_its_history<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let op = registry
        .run(&mut conn, "fails", RunArgs::new())
        .unwrap()
        .operation;
    let worker = Worker::new(Arc::clone(&registry), B::pool(&db, 2));
    assert_eq!(worker.run_until_idle(1).unwrap().failed, 1);
    admin::retry(&mut conn, op.id()).unwrap();
    assert_eq!(worker.run_until_idle(1).unwrap().failed, 1);
    let op = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!((op.status(), op.attempts()), (Status::Finished, 1));
    let output = op.output_data::<Value>().unwrap().unwrap();
    let previous = output["previous_attempts"].as_array().unwrap();
    assert_eq!(previous.len(), 1, "{output}");
    assert_eq!(previous[0]["actiongroup_name"], output["actiongroup_name"]);
}

fn retry_failed_queues_every_failure_matching_the_filter<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let imports: Vec<i64> = (0..3)
        .map(|_| failed::<B>(&mut conn, "import").id())
        .collect();
    let other = failed::<B>(&mut conn, "export");
    let mut success = BatchOperation::create_asynchronous("import")
        .insert(&mut conn)
        .unwrap();
    success.mark_as_running(&mut conn).unwrap();
    success.finish(&mut conn).unwrap();

    let import = OperationFilter::new().operation_type("import");
    assert_eq!(
        admin::retry_failed(&mut conn, &import.clone().limit(2)).unwrap(),
        2
    );
    assert_eq!(admin::retry_failed(&mut conn, &import).unwrap(), 1);
    assert_eq!(admin::retry_failed(&mut conn, &import).unwrap(), 0);
    for id in imports {
        let op = BatchOperation::find(&mut conn, id).unwrap();
        assert_eq!(op.status(), Status::Unprocessed);
    }
    let status = |conn: &mut B::Connection, id| BatchOperation::find(conn, id).unwrap().status();
    assert_eq!(status(&mut conn, other.id()), Status::Finished);
    assert_eq!(status(&mut conn, success.id()), Status::Finished);
}

/// Two operators retrying the same failure at once: it is queued once.
fn concurrent_retries_queue_a_failure_once<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    for _ in 0..20 {
        let op = failed::<B>(&mut conn, "import");
        let outcomes: Vec<Result<BatchOperation, Error>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut conn = B::connect(&db);
                        admin::retry(&mut conn, op.id())
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "{outcomes:?}");
        for outcome in &outcomes {
            if let Err(error) = outcome {
                assert!(
                    matches!(
                        error,
                        Error::Conflict { .. } | Error::IllegalTransition { .. }
                    ),
                    "{error:?}"
                );
            }
        }
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!(
            stored.output_data::<Value>().unwrap().unwrap(),
            json!({"previous_attempts": [{"error": "first"}]})
        );
    }
}

fn cancel_finishes_pending_work_and_asks_running_work_to_stop<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let pending = BatchOperation::create_asynchronous("mail")
        .insert(&mut conn)
        .unwrap();
    let Cancelled::Finished(cancelled) = admin::cancel(&mut conn, pending.id(), "ops").unwrap()
    else {
        panic!("a pending operation is finished")
    };
    assert_eq!(
        (cancelled.status(), cancelled.result()),
        (Status::Finished, OperationResult::Failed)
    );
    assert_eq!(
        cancelled.output_data::<Value>().unwrap().unwrap(),
        json!({"cancelled": true, "by": "ops"})
    );

    let mut running = BatchOperation::create_asynchronous("mail")
        .insert(&mut conn)
        .unwrap();
    running.mark_as_running(&mut conn).unwrap();
    let Cancelled::Requested(requested) = admin::cancel(&mut conn, running.id(), "ops").unwrap()
    else {
        panic!("a running operation is asked to stop")
    };
    assert_eq!(requested.status(), Status::Running);
    assert!(requested.cancel_requested());

    let error = admin::cancel(&mut conn, pending.id(), "ops").unwrap_err();
    assert!(
        matches!(
            error,
            Error::IllegalTransition {
                actual: Status::Finished,
                ..
            }
        ),
        "{error:?}"
    );
    let error = admin::cancel(&mut conn, pending.id() + 1000, "ops").unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

/// Cancelling pending work while a worker claims it, 200 times: each operation is either
/// cancelled and never run, or run (perhaps asked to stop); never both, never lost.
fn cancel_racing_a_claim_either_cancels_or_runs<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    let ids: Vec<i64> = (0..200)
        .map(|_| {
            registry
                .run(&mut conn, "record", RunArgs::new())
                .unwrap()
                .operation
                .id()
        })
        .collect();
    let worker = Worker::new(Arc::clone(&registry), B::pool(&db, 3)).batch_size(1);
    let outcomes = std::thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let mut conn = B::connect(&db);
            ids.iter()
                .map(|id| admin::cancel(&mut conn, *id, "ops"))
                .collect::<Vec<_>>()
        });
        worker.run_until_idle(2).unwrap();
        canceller.join().unwrap()
    });
    let ran: Vec<Option<i64>> = B::select_i64s(
        &mut conn,
        "SELECT operation_id AS v FROM executions ORDER BY operation_id",
    );
    let (all, distinct) = executions::<B>(&mut conn);
    assert_eq!(all, distinct, "nothing ran twice");
    for (id, outcome) in ids.iter().zip(&outcomes) {
        let stored = BatchOperation::find(&mut conn, *id).unwrap();
        assert_eq!(stored.status(), Status::Finished);
        let did_run = ran.contains(&Some(*id));
        match outcome {
            Ok(Cancelled::Finished(_)) => {
                assert!(!did_run, "operation {id} was cancelled and ran");
                assert_eq!(
                    stored.output_data::<Value>().unwrap().unwrap()["cancelled"],
                    json!(true)
                );
            }
            // Claimed first: it ran, asked to stop while running or already finished.
            Ok(Cancelled::Requested(_))
            | Err(Error::IllegalTransition {
                actual: Status::Finished,
                ..
            }) => {
                assert!(did_run, "operation {id} never ran");
                assert_eq!(stored.result(), OperationResult::Successful);
            }
            Err(error) => panic!("operation {id}: {error:?}"),
        }
    }
}

fn pause_and_resume_a_queue<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    admin::pause_queue(&mut conn, "default").unwrap();
    admin::pause_queue(&mut conn, "default").unwrap();
    assert_eq!(admin::paused_queues(&mut conn).unwrap(), ["default"]);
    for group in ["record", "record", "record-elsewhere"] {
        registry.run(&mut conn, group, RunArgs::new()).unwrap();
    }
    let worker = Worker::new(Arc::clone(&registry), B::pool(&db, 2));
    assert_eq!(
        worker.run_until_idle(1).unwrap().succeeded,
        1,
        "only `elsewhere` ran"
    );
    admin::resume_queue(&mut conn, "default").unwrap();
    assert_eq!(
        admin::paused_queues(&mut conn).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(worker.run_until_idle(1).unwrap().succeeded, 2);
    let error = admin::pause_queue(&mut conn, &"q".repeat(256)).unwrap_err();
    assert!(matches!(error, Error::ValueTooLong { .. }), "{error:?}");
}

/// A queue paused while a started worker claims from it: no operation of it starts after
/// `pause_queue` returns (the worker keeps serving its other queue meanwhile), and its work
/// starts again once resumed.
fn nothing_is_claimed_from_a_queue_after_its_pause_returns<B: TestBackend>() {
    const OPERATIONS: usize = 1_000;
    let (db, mut conn) = set_up::<B>();
    let registry = registry::<B>();
    // Enough one-at-a-time claims that the pause lands among them, however fast the machine.
    queue_many::<B>(&mut conn, &registry, "record", OPERATIONS);
    let handle = Worker::new(Arc::clone(&registry), B::pool(&db, 3))
        .batch_size(1)
        .poll_interval(Duration::from_millis(20))
        .start(2)
        .unwrap();
    let started = |conn: &mut B::Connection| {
        OperationFilter::new()
            .queue("default")
            .load(conn)
            .unwrap()
            .iter()
            .filter(|op| op.status() != Status::Unprocessed)
            .map(BatchOperation::id)
            .collect::<Vec<_>>()
    };
    eventually("the worker to start on the queue", || {
        !started(&mut conn).is_empty()
    });
    admin::pause_queue(&mut conn, "default").unwrap();
    let at_pause = started(&mut conn);
    // Work on the other queue, queued after the pause, is claimed: the worker kept claiming.
    let marker = registry
        .run(&mut conn, "record-elsewhere", RunArgs::new())
        .unwrap()
        .operation;
    eventually("the other queue's operation to finish", || {
        BatchOperation::find(&mut conn, marker.id())
            .unwrap()
            .status()
            == Status::Finished
    });
    assert_eq!(
        started(&mut conn),
        at_pause,
        "claimed after the pause returned"
    );
    assert!(
        at_pause.len() < OPERATIONS,
        "the pause came after all had started"
    );
    admin::resume_queue(&mut conn, "default").unwrap();
    eventually("the queue's work to start again after the resume", || {
        started(&mut conn).len() > at_pause.len()
    });
    handle.shutdown(Duration::from_secs(10)).unwrap();
}

fn finished_at<B: TestBackend>(conn: &mut B::Connection, queue: &str, succeeded: bool, ago: Span) {
    let mut op = BatchOperation::create_asynchronous("work")
        .queue(queue)
        .insert(conn)
        .unwrap();
    op.mark_as_running(conn).unwrap();
    if succeeded {
        op.finish(conn).unwrap();
    } else {
        op.finish_failed(conn, &"boom").unwrap();
    }
    set_timestamp::<B>(conn, op.id(), "finished_datetime", Utc::now() - ago);
}

fn the_overview_counts_each_queues_work_history_and_pause<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    assert_eq!(admin::queue_overview(&mut conn, 100).unwrap(), []);
    let due = BatchOperation::create_asynchronous("work")
        .queue("mail")
        .insert(&mut conn)
        .unwrap();
    set_timestamp::<B>(
        &mut conn,
        due.id(),
        "created_datetime",
        Utc::now() - Span::minutes(3),
    );
    BatchOperation::create_asynchronous("work")
        .queue("mail")
        .run_after(Utc::now() + Span::hours(1))
        .insert(&mut conn)
        .unwrap();
    finished_at::<B>(&mut conn, "mail", true, Span::minutes(1));
    finished_at::<B>(&mut conn, "mail", true, Span::minutes(30));
    finished_at::<B>(&mut conn, "mail", false, Span::minutes(2));
    finished_at::<B>(&mut conn, "mail", false, Span::hours(5));
    finished_at::<B>(&mut conn, "mail", false, Span::days(3));
    finished_at::<B>(&mut conn, "reports", true, Span::days(2));
    admin::pause_queue(&mut conn, "idle").unwrap();

    let overview = admin::queue_overview(&mut conn, 100).unwrap();
    let names: Vec<&str> = overview.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["idle", "mail", "reports"]);
    let recent = |five, hour, day| RecentCounts {
        last_5_minutes: Count::Exact(five),
        last_hour: Count::Exact(hour),
        last_day: Count::Exact(day),
    };
    let mail = &overview[1];
    assert_eq!(
        (mail.paused, mail.due, mail.delayed, mail.running),
        (false, Count::Exact(1), Count::Exact(1), Count::Exact(0))
    );
    assert_eq!(mail.succeeded, recent(1, 2, 2));
    assert_eq!(mail.failed, recent(1, 1, 2));
    let lag = mail.lag(Utc::now()).unwrap();
    assert!(lag >= Span::minutes(3) && lag < Span::minutes(4), "{lag}");
    // 2 finishes in the last 5 minutes, 3 in the last hour.
    assert!((mail.finished_per_minute_5m - 2.0 / 5.0).abs() < 1e-9);
    assert!((mail.finished_per_minute_60m - 3.0 / 60.0).abs() < 1e-9);
    let idle = &overview[0];
    assert!(idle.paused);
    assert_eq!((idle.due, idle.oldest_due), (Count::Exact(0), None));
    let reports: &QueueOverview = &overview[2];
    assert_eq!(reports.succeeded, recent(0, 0, 0));
}

/// Past the limit a count is "at least", and throughput is measured over the newest finishes.
fn the_overview_stops_counting_at_the_limit<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    for minutes in [1, 2, 3, 4] {
        finished_at::<B>(&mut conn, "mail", true, Span::minutes(minutes));
    }
    let mail = admin::queue_overview(&mut conn, 3).unwrap().remove(0);
    assert_eq!(mail.succeeded.last_5_minutes, Count::AtLeast(3));
    assert_eq!(mail.succeeded.last_day, Count::AtLeast(3));
    // The newest 3 finished within the last 3 minutes: about one a minute.
    assert!(
        mail.finished_per_minute_5m > 0.9 && mail.finished_per_minute_5m < 1.1,
        "{}",
        mail.finished_per_minute_5m
    );
    let mail = admin::queue_overview(&mut conn, 4).unwrap().remove(0);
    assert_eq!(mail.succeeded.last_5_minutes, Count::Exact(4));
}

backend_tests!(
    retry_queues_a_failure_again_and_keeps_its_output,
    retry_refuses_successes_and_unknown_ids,
    a_retried_operation_runs_again_with_its_history,
    retry_failed_queues_every_failure_matching_the_filter,
    concurrent_retries_queue_a_failure_once,
    cancel_finishes_pending_work_and_asks_running_work_to_stop,
    cancel_racing_a_claim_either_cancels_or_runs,
    pause_and_resume_a_queue,
    nothing_is_claimed_from_a_queue_after_its_pause_returns,
    the_overview_counts_each_queues_work_history_and_pause,
    the_overview_stops_counting_at_the_limit,
    finishes_are_counted_per_minute_by_the_database,
);

/// Finishes at chosen instants of the last hour land in their minute, by result and summed
/// over queues; past the limit the counts say from when they are whole. (Retried once if the
/// minute turned while the test ran.)
fn finishes_are_counted_per_minute_by_the_database<B: TestBackend>() {
    use chrono::DurationRound;
    let (_db, mut conn) = migrated::<B>();
    for _ in 0..2 {
        conn.batch_execute("DELETE FROM batchframework_batchoperation")
            .unwrap();
        let now = Utc::now();
        let first = now.duration_trunc(Span::minutes(1)).unwrap() - Span::minutes(59);
        let placed = [
            ("a", OperationResult::Successful, first + Span::seconds(10)),
            (
                "a",
                OperationResult::Successful,
                first + Span::minutes(5) + Span::seconds(1),
            ),
            (
                "b",
                OperationResult::Successful,
                first + Span::minutes(5) + Span::milliseconds(59_999),
            ),
            ("a", OperationResult::Failed, first + Span::minutes(30)),
            (
                "b",
                OperationResult::Failed,
                first + Span::minutes(58) + Span::seconds(30),
            ),
            // Before the window: not counted.
            ("a", OperationResult::Successful, first - Span::seconds(1)),
        ];
        for (queue, result, at) in placed {
            let mut op = BatchOperation::create_synchronous("job")
                .queue(queue)
                .insert(&mut conn)
                .unwrap();
            match result {
                OperationResult::Failed => op.finish_failed(&mut conn, &"no").unwrap(),
                _ => op.finish(&mut conn).unwrap(),
            }
            set_timestamp::<B>(&mut conn, op.id(), "finished_datetime", at);
        }
        let throughput = admin::finishes_per_minute(&mut conn, 60, 100).unwrap();
        if throughput.minutes[0].start != first {
            continue; // the minute turned
        }
        let by_minute: Vec<(usize, u64, u64)> = throughput
            .minutes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.succeeded + m.failed > 0)
            .map(|(i, m)| (i, m.succeeded, m.failed))
            .collect();
        assert_eq!(by_minute, [(0, 1, 0), (5, 2, 0), (30, 0, 1), (58, 0, 1)]);
        assert_eq!(throughput.counted_since, None);
        assert_eq!(throughput.minutes[59].start, first + Span::minutes(59));

        // A limit of 1 per queue and result: each is counted back to its newest finish only, so
        // the counts are whole from the latest of those on (queue b's failure).
        let capped = admin::finishes_per_minute(&mut conn, 60, 1).unwrap();
        let expected_since = first + Span::minutes(58) + Span::seconds(30);
        assert_eq!(capped.counted_since, Some(expected_since));
        assert_eq!(capped.minutes[0].succeeded, 0);
        return;
    }
    panic!("the minute turned twice during the test");
}
