//! The table's CHECK constraints hold the lifecycle's invariants even against raw SQL, and what
//! raw SQL can store (bad JSON) reads back as a typed error.

use batchframework_diesel::{BatchOperation, Error, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use diesel::connection::SimpleConnection;

fn insert_sql(status: &str, result: &str, started: &str, finished: &str) -> String {
    format!(
        "INSERT INTO batchframework_batchoperation \
         (created_datetime, started_running_datetime, finished_datetime, operationtype, status, result) \
         VALUES ('2026-01-01 00:00:00', {started}, {finished}, 'raw', '{status}', '{result}')"
    )
}

const T: &str = "'2026-01-01 00:00:01'";

fn raw_sql_cannot_store_an_inconsistent_operation<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let rejected = [
        // A finished operation has a result.
        insert_sql("finished", "not-available", T, T),
        // An unfinished one has none.
        insert_sql("running", "successful", T, "NULL"),
        // A running or finished operation has a start time.
        insert_sql("running", "not-available", "NULL", "NULL"),
        insert_sql("finished", "failed", "NULL", T),
        // A finished one has a finish time.
        insert_sql("finished", "successful", T, "NULL"),
        // Only known values.
        insert_sql("done", "not-available", T, "NULL"),
        insert_sql("running", "ok", T, "NULL"),
    ];
    for sql in &rejected {
        assert!(conn.batch_execute(sql).is_err(), "accepted: {sql}");
    }
    let accepted = [
        insert_sql("unprocessed", "not-available", "NULL", "NULL"),
        insert_sql("running", "not-available", T, "NULL"),
        insert_sql("finished", "failed", T, T),
    ];
    for sql in &accepted {
        conn.batch_execute(sql)
            .unwrap_or_else(|e| panic!("rejected {sql}: {e}"));
    }
}

fn invalid_json_written_by_hand_is_a_typed_error<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_synchronous("job")
        .insert(&mut conn)
        .unwrap();
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET input_data_json = '{{not json', \
         output_data_json = '[1, 2' WHERE id = {}",
        op.id()
    ))
    .unwrap();
    let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
    assert_eq!(
        stored.status(),
        Status::Running,
        "the row itself still loads"
    );
    let error = stored.input_data::<serde_json::Value>().unwrap_err();
    assert!(
        matches!(error, Error::InvalidJson { id, field: "input data", .. } if id == op.id()),
        "{error:?}"
    );
    let error = stored.output_data::<Vec<u8>>().unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidJson {
                field: "output data",
                ..
            }
        ),
        "{error:?}"
    );
}

backend_tests!(
    raw_sql_cannot_store_an_inconsistent_operation,
    invalid_json_written_by_hand_is_a_typed_error,
);
