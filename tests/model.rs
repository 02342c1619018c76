//! What ievv_batchframework's own model tests pin down, on every backend.

use batchframework_diesel::{BatchOperation, ContextRef, Error, OperationResult, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::SubsecRound;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Import {
    file: String,
    rows: Vec<u32>,
}

fn create_synchronous_is_running_with_start_time_and_input<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let input = Import {
        file: "users.csv".into(),
        rows: vec![1, 2, 3],
    };
    let op = BatchOperation::create_synchronous("import")
        .input(&input)
        .insert(&mut conn)
        .unwrap();
    assert_eq!(op.status(), Status::Running);
    assert_eq!(op.result(), OperationResult::NotAvailable);
    assert!(op.started_running_datetime().is_some());
    assert!(op.finished_datetime().is_none());

    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, op, "the returned value is what was stored");
    assert_eq!(stored.input_data::<Import>().unwrap(), Some(input));
}

fn create_asynchronous_is_unprocessed_and_stores_input<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_asynchronous("send-email")
        .input(&json!({"to": "a@example.com"}))
        .insert(&mut conn)
        .unwrap();
    assert_eq!(op.status(), Status::Unprocessed);
    assert!(op.started_running_datetime().is_none());

    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, op);
    assert_eq!(
        stored.input_data::<Value>().unwrap(),
        Some(json!({"to": "a@example.com"}))
    );
}

fn empty_object_input_is_stored_not_dropped<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_asynchronous("noop")
        .input(&json!({}))
        .insert(&mut conn)
        .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored.input_data_json(), "{}");
    assert_eq!(stored.input_data::<Value>().unwrap(), Some(json!({})));
}

fn missing_data_reads_as_none<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_synchronous("noop")
        .insert(&mut conn)
        .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored.input_data_json(), "");
    assert_eq!(stored.input_data::<Value>().unwrap(), None);
    assert_eq!(stored.output_data::<Value>().unwrap(), None);
}

fn mark_as_running_sets_status_and_start_time<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.mark_as_running(&mut conn).unwrap();
    assert_eq!(op.status(), Status::Running);
    let started = op.started_running_datetime().expect("a start time");
    assert!(started >= op.created_datetime());
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), op);
}

fn finish_is_successful_with_a_finish_time<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.finish(&mut conn).unwrap();
    assert_eq!(op.status(), Status::Finished);
    assert_eq!(op.result(), OperationResult::Successful);
    let finished = op.finished_datetime().expect("a finish time");
    assert!(finished >= op.started_running_datetime().unwrap());
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, op);
    assert_eq!(stored.output_data::<Value>().unwrap(), None);
}

fn finish_with_output_stores_the_output<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.finish_with_output(&mut conn, &json!({"created": 1000}))
        .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored.result(), OperationResult::Successful);
    assert_eq!(
        stored.output_data::<Value>().unwrap(),
        Some(json!({"created": 1000}))
    );
}

fn finish_failed_is_failed_and_stores_the_error_data<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.finish_failed(&mut conn, &json!({"error": "disk full"}))
        .unwrap();
    assert_eq!(op.result(), OperationResult::Failed);
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, op);
    assert_eq!(stored.status(), Status::Finished);
    assert_eq!(stored.result(), OperationResult::Failed);
    assert_eq!(
        stored.output_data::<Value>().unwrap(),
        Some(json!({"error": "disk full"}))
    );
}

fn context_object_and_started_by_are_stored<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let game = ContextRef::new("games", 42_i64);
    let op = BatchOperation::create_synchronous("deal")
        .context_object(&game)
        .started_by("user-7")
        .insert(&mut conn)
        .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored.context_object_type(), Some("games"));
    assert_eq!(stored.context_object_id(), Some("42"));
    assert_eq!(stored.started_by(), Some("user-7"));
}

fn operation_type_longer_than_255_characters_is_an_error<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    // 255 two-byte characters fit: the limit is in characters, not bytes.
    let longest = "é".repeat(255);
    let op = BatchOperation::create_synchronous(longest.clone())
        .insert(&mut conn)
        .unwrap();
    assert_eq!(
        BatchOperation::find(&mut conn, op.id())
            .unwrap()
            .operation_type(),
        longest
    );

    let error = BatchOperation::create_synchronous("é".repeat(256))
        .insert(&mut conn)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::ValueTooLong {
                field: "operation type",
                length: 256,
                limit: 255
            }
        ),
        "{error:?}"
    );
    let error = BatchOperation::create_synchronous("ok")
        .context_object(&ContextRef::new("games", "x".repeat(300)))
        .insert(&mut conn)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::ValueTooLong {
                field: "context object id",
                ..
            }
        ),
        "{error:?}"
    );
    let all = batchframework_diesel::OperationFilter::new()
        .count(&mut conn)
        .unwrap();
    assert_eq!(all, 1, "nothing was inserted for the rejected operations");
}

/// The execution columns (issue 4's migration) are written by the builder and read back.
fn execution_settings_are_stored<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let later = chrono::Utc::now() + chrono::Duration::minutes(15);
    let op = BatchOperation::create_asynchronous("new-blogpost-email")
        .queue("highpriority")
        .priority(5)
        .run_after(later)
        .max_attempts(3)
        .insert(&mut conn)
        .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, op);
    assert_eq!(stored.queue(), "highpriority");
    assert_eq!(stored.priority(), 5);
    assert_eq!(stored.run_after(), Some(later.trunc_subsecs(6)));
    assert_eq!((stored.attempts(), stored.max_attempts()), (0, 3));
    assert_eq!(stored.locked_by(), None);
    assert_eq!(stored.progress(), None);
    assert!(!stored.cancel_requested());

    let defaults = BatchOperation::create_asynchronous("x")
        .max_attempts(0)
        .insert(&mut conn)
        .unwrap();
    let stored = BatchOperation::find(&mut conn, defaults.id()).unwrap();
    assert_eq!(
        (stored.queue(), stored.priority(), stored.run_after()),
        ("default", 0, None)
    );
    assert_eq!(stored.max_attempts(), 1, "at least one attempt");

    let error = BatchOperation::create_asynchronous("x")
        .queue("q".repeat(256))
        .insert(&mut conn)
        .unwrap_err();
    assert!(
        matches!(error, Error::ValueTooLong { field: "queue", .. }),
        "{error:?}"
    );
}

backend_tests!(
    execution_settings_are_stored,
    create_synchronous_is_running_with_start_time_and_input,
    create_asynchronous_is_unprocessed_and_stores_input,
    empty_object_input_is_stored_not_dropped,
    missing_data_reads_as_none,
    mark_as_running_sets_status_and_start_time,
    finish_is_successful_with_a_finish_time,
    finish_with_output_stores_the_output,
    finish_failed_is_failed_and_stores_the_error_data,
    context_object_and_started_by_are_stored,
    operation_type_longer_than_255_characters_is_an_error,
);
