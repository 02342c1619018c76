//! The same API on r2d2 pooled connections.

use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use diesel::r2d2::{ConnectionManager, Pool};

fn the_lifecycle_works_on_pooled_connections<B: TestBackend>() {
    let (db, _conn) = migrated::<B>();
    let pool = Pool::builder()
        .max_size(2)
        .build(ConnectionManager::<B::Connection>::new(&db.url))
        .unwrap();
    let mut conn = pool.get().unwrap();
    assert!(batchframework_diesel::run_migrations(&mut conn)
        .unwrap()
        .is_empty());

    let mut op = BatchOperation::create_asynchronous("pooled")
        .input(&serde_json::json!({"n": 1}))
        .insert(&mut conn)
        .unwrap();
    let mut other = pool.get().unwrap();
    op.mark_as_running(&mut other).unwrap();
    op.finish_with_output(&mut conn, &2).unwrap();
    let stored = BatchOperation::find(&mut other, op.id()).unwrap();
    assert_eq!(stored, op);
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Successful)
    );
    assert_eq!(
        OperationFilter::new()
            .operation_type("pooled")
            .count(&mut conn)
            .unwrap(),
        1
    );
}

backend_tests!(the_lifecycle_works_on_pooled_connections);
