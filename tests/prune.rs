//! Pruning old finished operations: only finished ones that finished before the instant and
//! match the type and result go, in statements of at most the batch size, and tracked rows of
//! user tables survive with a NULL tag.

use batchframework_diesel::{
    add_tracking_column, BatchOperation, OperationFilter, OperationOrder, OperationResult, Prune,
    Status,
};
use batchframework_tests::{backend_tests, migrated, StatementCounter, TestBackend};
use chrono::{DateTime, Duration, Utc};
use diesel::connection::SimpleConnection;

use crate::queries::set_timestamp;

/// The instant every "old" operation of these tests finished at, and the cutoff just after it.
fn old() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn cutoff() -> DateTime<Utc> {
    old() + Duration::microseconds(1)
}

/// A finished operation of type `kind` with `result`, finished at `finished`.
fn finished<B: TestBackend>(
    conn: &mut B::Connection,
    kind: &str,
    result: OperationResult,
    at: DateTime<Utc>,
) -> i64 {
    let mut op = BatchOperation::create_synchronous(kind)
        .insert(conn)
        .unwrap();
    match result {
        OperationResult::Failed => op.finish_failed(conn, &"broken").unwrap(),
        _ => op.finish(conn).unwrap(),
    }
    set_timestamp::<B>(conn, op.id(), "started_running_datetime", at);
    set_timestamp::<B>(conn, op.id(), "finished_datetime", at);
    op.id()
}

fn remaining<B: TestBackend>(conn: &mut B::Connection) -> Vec<i64> {
    OperationFilter::new()
        .order_by(OperationOrder::IdAscending)
        .load(conn)
        .unwrap()
        .iter()
        .map(BatchOperation::id)
        .collect()
}

/// Only finished operations that finished strictly before the instant and match the type and
/// result are deleted.
fn prune_deletes_only_finished_operations_before_the_instant_that_match<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    use OperationResult::{Failed, Successful};
    let old_import_ok = finished::<B>(&mut conn, "import", Successful, old());
    let old_import_failed = finished::<B>(&mut conn, "import", Failed, old());
    let old_email_failed = finished::<B>(&mut conn, "email", Failed, old());
    let at_cutoff = finished::<B>(&mut conn, "import", Failed, cutoff());
    let recent = finished::<B>(&mut conn, "import", Successful, Utc::now());
    let pending = BatchOperation::create_asynchronous("import")
        .insert(&mut conn)
        .unwrap()
        .id();

    let prune = Prune::finished_before(cutoff());
    assert_eq!(
        prune
            .clone()
            .result(OperationResult::NotAvailable)
            .run(&mut conn)
            .unwrap(),
        0,
        "a finished operation always has a result"
    );
    assert_eq!(
        prune
            .clone()
            .operation_type("import")
            .result(Failed)
            .run(&mut conn)
            .unwrap(),
        1
    );
    let left = remaining::<B>(&mut conn);
    assert!(!left.contains(&old_import_failed));
    assert_eq!(
        left,
        [old_import_ok, old_email_failed, at_cutoff, recent, pending]
    );
    assert_eq!(
        prune
            .clone()
            .operation_type("import")
            .run(&mut conn)
            .unwrap(),
        1
    );
    assert_eq!(
        remaining::<B>(&mut conn),
        [old_email_failed, at_cutoff, recent, pending]
    );
    assert_eq!(prune.run(&mut conn).unwrap(), 1);
    assert_eq!(
        remaining::<B>(&mut conn),
        [at_cutoff, recent, pending],
        "the cutoff is strict"
    );
    assert_eq!(prune.run(&mut conn).unwrap(), 0, "nothing left to prune");
}

/// Unprocessed and running operations are never pruned, however old, even with every timestamp
/// (finished_datetime too, written by hand) long before the instant.
fn prune_never_deletes_unprocessed_or_running_operations<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let pending = BatchOperation::create_asynchronous("import")
        .insert(&mut conn)
        .unwrap();
    let running = BatchOperation::create_synchronous("import")
        .insert(&mut conn)
        .unwrap();
    for id in [pending.id(), running.id()] {
        for column in ["created_datetime", "finished_datetime"] {
            set_timestamp::<B>(&mut conn, id, column, old());
        }
    }
    set_timestamp::<B>(&mut conn, running.id(), "started_running_datetime", old());
    let done = finished::<B>(&mut conn, "import", OperationResult::Successful, old());

    let deleted = Prune::finished_before(DateTime::<Utc>::MAX_UTC)
        .operation_type("import")
        .batch_size(1)
        .run(&mut conn)
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(remaining::<B>(&mut conn), [pending.id(), running.id()]);
    assert_eq!(
        BatchOperation::find(&mut conn, running.id())
            .unwrap()
            .status(),
        Status::Running
    );
    assert!(BatchOperation::find(&mut conn, done).is_err());
}

/// A batch size below the row count deletes everything in several statements, each deleting at
/// most the batch size; through a pooled connection too.
fn prune_deletes_in_statements_of_at_most_the_batch_size<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    for _ in 0..25 {
        finished::<B>(&mut conn, "import", OperationResult::Successful, old());
    }
    let keep = finished::<B>(&mut conn, "import", OperationResult::Successful, Utc::now());

    let counter = StatementCounter::install(&mut conn);
    let deleted = Prune::finished_before(cutoff())
        .batch_size(10)
        .run(&mut conn)
        .unwrap();
    assert_eq!(deleted, 25);
    let statements = counter.take();
    let is = |sql: &str, keyword: &str| sql.trim_start().to_ascii_uppercase().starts_with(keyword);
    let deletes: Vec<usize> = (0..statements.len())
        .filter(|&i| is(&statements[i], "DELETE"))
        .collect();
    assert_eq!(deletes.len(), 3, "10 + 10 + 5: {statements:#?}");
    for i in deletes {
        // The statement that picks the batch's rows limits them: the DELETE itself, or on
        // MySQL/MariaDB the SELECT of their ids just before it.
        let picks = match B::NAME {
            "mysql" => &statements[i - 1],
            _ => &statements[i],
        };
        assert!(picks.to_ascii_uppercase().contains("LIMIT"), "{picks}");
    }
    assert_eq!(remaining::<B>(&mut conn), [keep]);

    // A batch size of 0 counts as 1; the default is 10,000.
    for _ in 0..2 {
        finished::<B>(&mut conn, "import", OperationResult::Failed, old());
    }
    let pool = B::pool(&db, 1);
    let mut pooled = pool.get().unwrap();
    let deleted = Prune::finished_before(cutoff())
        .batch_size(0)
        .run(&mut pooled)
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(Prune::DEFAULT_BATCH_SIZE, 10_000);
    assert_eq!(
        Prune::finished_before(cutoff()),
        Prune::finished_before(cutoff()).batch_size(10_000)
    );
}

/// Each batch starts after the highest id of the previous one, so the operations a prune keeps
/// (here the failures, interleaved with the successes it deletes) are read once, not by every
/// batch again.
fn each_prune_batch_starts_where_the_previous_one_ended<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut kept = Vec::new();
    for _ in 0..6 {
        kept.push(finished::<B>(
            &mut conn,
            "import",
            OperationResult::Failed,
            old(),
        ));
        finished::<B>(&mut conn, "import", OperationResult::Successful, old());
    }
    let counter = StatementCounter::install(&mut conn);
    let deleted = Prune::finished_before(cutoff())
        .result(OperationResult::Successful)
        .batch_size(2)
        .run(&mut conn)
        .unwrap();
    assert_eq!(deleted, 6);
    let statements = counter.take();
    assert_eq!(remaining::<B>(&mut conn), kept);
    // The statements that pick each batch's rows (on MySQL/MariaDB the SELECT of the ids, as
    // elsewhere the DELETE): the first from the start, each later one after an id.
    let picks: Vec<String> = statements
        .into_iter()
        .filter(|sql| {
            let sql = sql.trim_start().to_ascii_uppercase();
            sql.starts_with(if B::NAME == "mysql" {
                "SELECT"
            } else {
                "DELETE"
            })
        })
        .collect();
    let after_an_id = |sql: &String| sql.contains("\"id\" > ") || sql.contains("`id` > ");
    assert_eq!(picks.len(), 4, "2 + 2 + 2 + 0: {picks:#?}");
    assert!(!after_an_id(&picks[0]), "{}", picks[0]);
    assert!(picks[1..].iter().all(after_an_id), "{picks:#?}");
}

/// Rows of a tracked user table keep their data when their operation is pruned: the foreign
/// key is `ON DELETE SET NULL`.
fn pruning_keeps_tracked_rows_with_a_null_operation_id<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    conn.batch_execute(&format!(
        "CREATE TABLE players ({}, name VARCHAR(50) NOT NULL)",
        B::ID_COLUMN
    ))
    .unwrap();
    add_tracking_column(&mut conn, "players").unwrap();
    let old_op = finished::<B>(&mut conn, "add-players", OperationResult::Successful, old());
    let recent_op = finished::<B>(
        &mut conn,
        "add-players",
        OperationResult::Successful,
        Utc::now(),
    );
    conn.batch_execute(&format!(
        "INSERT INTO players (name, batchoperation_id) VALUES \
         ('ann', {old_op}), ('bob', {old_op}), ('cy', {recent_op}), ('dan', NULL)"
    ))
    .unwrap();

    let deleted = Prune::finished_before(cutoff()).run(&mut conn).unwrap();
    assert_eq!(deleted, 1);
    let tags = B::select_i64s(
        &mut conn,
        "SELECT batchoperation_id AS v FROM players ORDER BY id",
    );
    assert_eq!(tags, [None, None, Some(recent_op), None]);
    let count = B::select_i64s(&mut conn, "SELECT COUNT(*) AS v FROM players");
    assert_eq!(count, [Some(4)], "every player is still there");
}

backend_tests!(
    prune_deletes_only_finished_operations_before_the_instant_that_match,
    prune_never_deletes_unprocessed_or_running_operations,
    prune_deletes_in_statements_of_at_most_the_batch_size,
    each_prune_batch_starts_where_the_previous_one_ended,
    pruning_keeps_tracked_rows_with_a_null_operation_id,
);
