//! Illegal transitions are refused and change nothing, in the database or in memory.

use batchframework_diesel::{BatchOperation, ContextRef, Error, OperationFilter, Status};
use batchframework_tests::{backend_tests, migrated, StatementCounter, TestBackend};
use diesel::Connection;
use serde_json::json;

fn assert_illegal(error: Error, expected: Status, actual: Status) {
    match error {
        Error::IllegalTransition {
            expected: e,
            actual: a,
            ..
        } => assert_eq!((e, a), (expected, actual)),
        other => panic!("expected IllegalTransition, got {other:?}"),
    }
}

fn finish_of_a_never_started_operation_changes_nothing<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    let before = op.clone();

    assert_illegal(
        op.finish(&mut conn).unwrap_err(),
        Status::Running,
        Status::Unprocessed,
    );
    assert_illegal(
        op.finish_failed(&mut conn, &json!({"e": 1})).unwrap_err(),
        Status::Running,
        Status::Unprocessed,
    );
    assert_eq!(op, before, "the struct is unchanged");
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), before);
}

fn mark_as_running_of_a_finished_operation_changes_nothing<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.finish(&mut conn).unwrap();
    let before = op.clone();

    assert_illegal(
        op.mark_as_running(&mut conn).unwrap_err(),
        Status::Unprocessed,
        Status::Finished,
    );
    assert_eq!(op, before);
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), before);
}

fn finishing_twice_is_refused<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.finish_with_output(&mut conn, &json!("first")).unwrap();
    let before = op.clone();

    assert_illegal(
        op.finish_failed(&mut conn, &json!("second")).unwrap_err(),
        Status::Running,
        Status::Finished,
    );
    assert_eq!(op, before);
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(stored, before);
    assert_eq!(
        stored.output_data::<String>().unwrap().as_deref(),
        Some("first")
    );
}

fn starting_twice_is_refused<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    op.mark_as_running(&mut conn).unwrap();
    let before = op.clone();
    assert_illegal(
        op.mark_as_running(&mut conn).unwrap_err(),
        Status::Unprocessed,
        Status::Running,
    );
    assert_eq!(op, before);
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), before);
}

/// A stale in-memory copy cannot overwrite what another connection did: the guard is in the
/// `UPDATE`, not only in memory, and the error reports the status the database holds.
fn a_stale_copy_cannot_overwrite_the_database<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    let mut other = B::connect(&db);
    let mut op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    let mut stale = op.clone();
    op.finish_failed(&mut conn, &json!("real result")).unwrap();
    let finished = BatchOperation::find(&mut conn, op.id()).unwrap();

    assert_illegal(
        stale.finish(&mut other).unwrap_err(),
        Status::Running,
        Status::Finished,
    );
    assert_eq!(
        stale.status(),
        Status::Running,
        "the stale copy is unchanged"
    );
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), finished);
}

fn a_removed_operation_is_not_found<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    let removed = OperationFilter::new()
        .operation_type("job")
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 1);
    let error = op.mark_as_running(&mut conn).unwrap_err();
    assert!(
        matches!(error, Error::NotFound { id } if id == op.id()),
        "{error:?}"
    );
    assert!(matches!(
        BatchOperation::find(&mut conn, op.id()),
        Err(Error::NotFound { .. })
    ));
}

/// The statement counts are a contract: one INSERT (plus `LAST_INSERT_ID()` on MySQL), one
/// UPDATE per step, no query for a step memory already knows is illegal, and one read-back only
/// when the guarded UPDATE lost a race.
fn each_step_costs_exactly_the_documented_statements<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    let counter = StatementCounter::install(&mut conn);

    let mut op = BatchOperation::create_asynchronous("job")
        .input(&json!({"n": 1}))
        .insert(&mut conn)
        .unwrap();
    assert_eq!(counter.take().len(), B::INSERT_STATEMENTS);
    op.mark_as_running(&mut conn).unwrap();
    assert_eq!(counter.take().len(), 1);
    let mut stale = op.clone();
    op.finish(&mut conn).unwrap();
    assert_eq!(counter.take().len(), 1);

    assert!(op.finish(&mut conn).is_err());
    assert_eq!(counter.take(), Vec::<String>::new(), "refused from memory");

    let mut other = B::connect(&db);
    let other_counter = StatementCounter::install(&mut other);
    assert!(stale.finish(&mut other).is_err());
    assert_eq!(
        other_counter.take().len(),
        2,
        "the guarded UPDATE, then the read-back"
    );
}

/// Recording an operation is one statement prepared once per connection and then only bound,
/// whichever optional details each operation has (a `DEFAULT` in the SQL would make Diesel
/// prepare it anew every time).
fn recording_an_operation_prepares_its_insert_once_per_connection<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let prepared = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&prepared);
    conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
            seen.lock().expect("lock").push(sql.to_owned());
        }
    });
    let game = ContextRef::new("games", 7);
    BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    BatchOperation::create_asynchronous("job")
        .context_object(&game)
        .started_by("ana")
        .input(&json!({"n": 1}))
        .run_after(chrono::Utc::now() + chrono::Duration::minutes(5))
        .insert(&mut conn)
        .unwrap();
    BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    let inserts: Vec<String> = prepared
        .lock()
        .expect("lock")
        .iter()
        .filter(|sql| sql.trim_start().to_ascii_uppercase().starts_with("INSERT"))
        .cloned()
        .collect();
    assert_eq!(inserts.len(), 1, "prepared inserts: {inserts:#?}");
}

backend_tests!(
    recording_an_operation_prepares_its_insert_once_per_connection,
    each_step_costs_exactly_the_documented_statements,
    finish_of_a_never_started_operation_changes_nothing,
    mark_as_running_of_a_finished_operation_changes_nothing,
    finishing_twice_is_refused,
    starting_twice_is_refused,
    a_stale_copy_cannot_overwrite_the_database,
    a_removed_operation_is_not_found,
);
