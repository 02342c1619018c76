//! The embedded migrations.

use batchframework_diesel::{run_migrations, BatchOperation, Error, OperationFilter};
use batchframework_tests::{backend_tests, migrated, TestBackend};

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
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
}

backend_tests!(
    applying_the_migrations_twice_is_a_no_op,
    an_unmigrated_database_says_to_run_the_migrations,
);
