//! Workers claim only the operation types their registry has: services with different registries
//! share a queue, and work queued for a group that no running worker knows yet (a rolling
//! deploy) waits for one that does instead of being failed.

use std::sync::Arc;

use batchframework_diesel::registry::{ActionGroup, Registry};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::worker::{executions, queue, queue_many, set_up};

/// A registry whose asynchronous groups, one per name, record each run in `executions`.
fn registry_of<B: TestBackend>(types: &[&str]) -> Arc<Registry<B::Connection>> {
    let mut builder = Registry::builder();
    for name in types {
        builder = builder.group(ActionGroup::new(*name).asynchronous().action_fn(
            "record",
            |ctx: &mut batchframework_diesel::registry::ActionContext<'_, B::Connection>| {
                let id = ctx.operation().id();
                ctx.conn().batch_execute(&format!(
                    "INSERT INTO executions (operation_id) VALUES ({id})"
                ))?;
                Ok(json!(id))
            },
        ));
    }
    Arc::new(builder.build().unwrap())
}

/// The operations of `operation_type`, oldest first.
fn operations_of<B: TestBackend>(
    conn: &mut B::Connection,
    operation_type: &str,
) -> Vec<BatchOperation> {
    let mut operations = OperationFilter::new()
        .operation_type(operation_type)
        .load(conn)
        .unwrap();
    operations.sort_by_key(BatchOperation::id);
    operations
}

/// Untouched: still queued, never claimed, no attempt counted.
fn assert_untouched(operations: &[BatchOperation]) {
    for op in operations {
        assert_eq!(
            (op.status(), op.result(), op.attempts(), op.locked_by()),
            (Status::Unprocessed, OperationResult::NotAvailable, 0, None),
            "{op:?}"
        );
    }
}

fn two_workers_with_different_registries_each_run_only_their_own<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let billing = registry_of::<B>(&["invoice"]);
    let mailing = registry_of::<B>(&["newsletter"]);
    // Interleaved on the one `default` queue, so neither kind is only ahead of the other.
    for _ in 0..5 {
        queue::<B>(&mut conn, &billing, "invoice");
        queue::<B>(&mut conn, &mailing, "newsletter");
    }

    let stats = Worker::new(Arc::clone(&billing), B::pool(&db, 3))
        .run_until_idle(2)
        .unwrap();
    assert_eq!((stats.succeeded, stats.failed), (5, 0));
    assert!(operations_of::<B>(&mut conn, "invoice")
        .iter()
        .all(|op| op.result() == OperationResult::Successful));
    assert_untouched(&operations_of::<B>(&mut conn, "newsletter"));

    let stats = Worker::new(Arc::clone(&mailing), B::pool(&db, 3))
        .run_until_idle(2)
        .unwrap();
    assert_eq!((stats.succeeded, stats.failed), (5, 0));
    assert!(operations_of::<B>(&mut conn, "newsletter")
        .iter()
        .all(|op| op.result() == OperationResult::Successful && op.attempts() == 1));
    assert_eq!(executions::<B>(&mut conn), (Some(10), Some(10)));
}

fn work_queued_before_its_group_was_deployed_runs_once_a_worker_knows_it<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let old_release = registry_of::<B>(&["invoice"]);
    let new_release = registry_of::<B>(&["invoice", "refund"]);
    // The new release's web servers are out first: they queue work of the new type.
    queue_many::<B>(&mut conn, &new_release, "refund", 3);
    queue::<B>(&mut conn, &new_release, "invoice");

    let stats = Worker::new(Arc::clone(&old_release), B::pool(&db, 2))
        .run_until_idle(1)
        .unwrap();
    assert_eq!((stats.succeeded, stats.failed), (1, 0));
    assert_untouched(&operations_of::<B>(&mut conn, "refund"));

    let stats = Worker::new(Arc::clone(&new_release), B::pool(&db, 2))
        .run_until_idle(1)
        .unwrap();
    assert_eq!((stats.succeeded, stats.failed), (3, 0));
    let refunds = operations_of::<B>(&mut conn, "refund");
    assert_eq!(refunds.len(), 3);
    assert!(refunds
        .iter()
        .all(|op| op.result() == OperationResult::Successful && op.attempts() == 1));
    assert_eq!(executions::<B>(&mut conn), (Some(4), Some(4)));
}

/// 4 threads on a registry of 3 types, whose claims read one index range per type and merge
/// them: each of 600 interleaved operations still runs exactly once, in one attempt.
fn claims_across_several_types_run_each_operation_exactly_once<B: TestBackend>() {
    let (db, mut conn) = set_up::<B>();
    let registry = registry_of::<B>(&["invoice", "refund", "receipt"]);
    for _ in 0..200 {
        for operation_type in ["invoice", "refund", "receipt"] {
            queue::<B>(&mut conn, &registry, operation_type);
        }
    }
    let stats = Worker::new(Arc::clone(&registry), B::pool(&db, 6))
        .batch_size(8)
        .run_until_idle(4)
        .unwrap();
    assert_eq!((stats.succeeded, stats.failed, stats.fenced), (600, 0, 0));
    assert_eq!(executions::<B>(&mut conn), (Some(600), Some(600)));
    for operation_type in ["invoice", "refund", "receipt"] {
        let operations = operations_of::<B>(&mut conn, operation_type);
        assert_eq!(operations.len(), 200);
        assert!(
            operations.iter().all(|op| op.attempts() == 1),
            "{operation_type}"
        );
    }
}

backend_tests!(
    claims_across_several_types_run_each_operation_exactly_once,
    two_workers_with_different_registries_each_run_only_their_own,
    work_queued_before_its_group_was_deployed_runs_once_a_worker_knows_it,
);
