//! The embedded migrations.

use batchframework_diesel::{run_migrations, BatchOperation, Error, OperationFilter};
use batchframework_tests::{backend_tests, migrated, TestBackend};

/// How many migrations this backend embeds: 8 on SQLite and MySQL, 9 on PostgreSQL (its
/// new-work notification triggers).
fn migration_count<B: TestBackend>() -> usize {
    use diesel::migration::MigrationSource;
    let count = MigrationSource::<<B::Connection as diesel::Connection>::Backend>::migrations(
        &B::migrations(),
    )
    .unwrap()
    .len();
    assert_eq!(count, if B::NAME == "postgres" { 9 } else { 8 });
    count
}

fn applying_the_migrations_twice_is_a_no_op<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_synchronous("kept")
        .insert(&mut conn)
        .unwrap();
    assert_eq!(run_migrations(&mut conn).unwrap(), Vec::<String>::new());
    assert_eq!(BatchOperation::find(&mut conn, op.id()).unwrap(), op);
}

fn an_unmigrated_database_says_to_run_the_migrations<B: TestBackend>() {
    let db = B::create_database();
    let mut conn = B::connect(&db);
    let error = OperationFilter::new().count(&mut conn).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert!(error.to_string().contains("run_migrations"), "{error}");

    let applied = run_migrations(&mut conn).unwrap();
    assert_eq!(applied.len(), migration_count::<B>(), "{applied:?}");
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
}

/// A database migrated only to an older version is told to migrate too, not handed a bare
/// "no such column".
fn an_outdated_database_says_to_run_the_migrations<B: TestBackend>() {
    let db = B::create_database();
    let mut conn = B::connect(&db);
    run_migrations(&mut conn).unwrap();
    // Step back to the first migration, which lacks the execution columns.
    let later = migration_count::<B>() - 1;
    for _ in 0..later {
        B::revert_last_migration(&mut conn);
    }
    let error = OperationFilter::new().load(&mut conn).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert_eq!(run_migrations(&mut conn).unwrap().len(), later);
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
}

/// A database migrated by a release before the queue settings table: pausing a queue says to
/// migrate too.
fn a_missing_queue_table_says_to_run_the_migrations<B: TestBackend>() {
    let db = B::create_database();
    let mut conn = B::connect(&db);
    run_migrations(&mut conn).unwrap();
    // Back to before the queue settings table (and the batches and workflows, which came
    // after it).
    for _ in 0..3 {
        B::revert_last_migration(&mut conn);
    }
    let error = batchframework_diesel::admin::pause_queue(&mut conn, "mail").unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert_eq!(run_migrations(&mut conn).unwrap().len(), 3);
    batchframework_diesel::admin::pause_queue(&mut conn, "mail").unwrap();
}

/// A database migrated by a release before batches: reading operations or a batch's progress
/// says to migrate too.
fn a_missing_batch_table_says_to_run_the_migrations<B: TestBackend>() {
    let db = B::create_database();
    let mut conn = B::connect(&db);
    run_migrations(&mut conn).unwrap();
    // Back to before the batches (and the workflows, which came after them).
    B::revert_last_migration(&mut conn);
    B::revert_last_migration(&mut conn);
    let error = OperationFilter::new().load(&mut conn).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    let error = BatchOperation::batch_progress(&mut conn, 1).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert_eq!(run_migrations(&mut conn).unwrap().len(), 2);
    assert!(matches!(
        BatchOperation::batch_progress(&mut conn, 1),
        Err(Error::NotABatch { id: 1 })
    ));
}

/// A database migrated by a release before workflows: enqueueing one, or reading a batch's
/// progress, says to migrate too.
fn a_missing_workflow_table_says_to_run_the_migrations<B: TestBackend>() {
    use batchframework_diesel::registry::{Registry, RunArgs};
    use batchframework_diesel::workflow::Step;
    let db = B::create_database();
    let mut conn = B::connect(&db);
    run_migrations(&mut conn).unwrap();
    B::revert_last_migration(&mut conn);
    let registry = Registry::<B::Connection>::builder()
        .group_with("step", |g| {
            g.asynchronous().action_fn("run", |_| Ok(().into()))
        })
        .build()
        .unwrap();
    let enqueue = |conn: &mut B::Connection| {
        registry
            .workflow("flow")
            .step(Step::new("a", "step", RunArgs::new()))
            .step(Step::new("b", "step", RunArgs::new()).after(["a"]))
            .enqueue(conn)
    };
    let error = enqueue(&mut conn).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    let error = BatchOperation::batch_progress(&mut conn, 1).unwrap_err();
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert_eq!(run_migrations(&mut conn).unwrap().len(), 1);
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
    let workflow = enqueue(&mut conn).unwrap();
    assert_eq!(workflow.steps().count(), 2);
}

backend_tests!(
    a_missing_batch_table_says_to_run_the_migrations,
    a_missing_workflow_table_says_to_run_the_migrations,
    a_missing_queue_table_says_to_run_the_migrations,
    an_outdated_database_says_to_run_the_migrations,
    applying_the_migrations_twice_is_a_no_op,
    an_unmigrated_database_says_to_run_the_migrations,
);
