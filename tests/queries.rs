//! Queries by type, context object, status and creation time, and removal of pending work.

use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::Duration;

fn ids(ops: &[BatchOperation]) -> Vec<i64> {
    ops.iter().map(BatchOperation::id).collect()
}

fn filters_by_type_context_and_status<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let post = ContextRef::new("blog_posts", 1);
    let other_post = ContextRef::new("blog_posts", 2);
    let game = ContextRef::new("games", 1);
    let email = BatchOperation::create_asynchronous("email")
        .context_object(&post)
        .insert(&mut conn)
        .unwrap();
    let other_email = BatchOperation::create_asynchronous("email")
        .context_object(&other_post)
        .insert(&mut conn)
        .unwrap();
    let deal = BatchOperation::create_synchronous("deal")
        .context_object(&game)
        .insert(&mut conn)
        .unwrap();
    let untyped = BatchOperation::create_synchronous("Email")
        .insert(&mut conn)
        .unwrap();

    let by_type = OperationFilter::new().operation_type("email");
    assert_eq!(
        ids(&by_type.load(&mut conn).unwrap()),
        [email.id(), other_email.id()],
        "exact, case-sensitive match on every backend"
    );
    let by_context = OperationFilter::new().context_object(&post);
    assert_eq!(ids(&by_context.load(&mut conn).unwrap()), [email.id()]);
    // Same id, other type key: not the same object.
    let by_game = OperationFilter::new().context_object(&game);
    assert_eq!(ids(&by_game.load(&mut conn).unwrap()), [deal.id()]);
    let running = OperationFilter::new().status(Status::Running);
    assert_eq!(
        ids(&running.load(&mut conn).unwrap()),
        [deal.id(), untyped.id()]
    );
    assert_eq!(running.count(&mut conn).unwrap(), 2);
    let combined = OperationFilter::new()
        .operation_type("email")
        .status(Status::Running);
    assert!(combined.load(&mut conn).unwrap().is_empty());
}

/// `created_before` is strict and exact to the microsecond on every backend.
fn created_before_is_exact_to_the_microsecond<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_asynchronous("email")
        .insert(&mut conn)
        .unwrap();
    let created = op.created_datetime();
    let at = OperationFilter::new().created_before(created);
    assert_eq!(
        at.count(&mut conn).unwrap(),
        0,
        "not strictly before itself"
    );
    let just_after = OperationFilter::new().created_before(created + Duration::microseconds(1));
    assert_eq!(ids(&just_after.load(&mut conn).unwrap()), [op.id()]);
}

/// The seed's cancel case: removing a post's pending email removes only pending operations of
/// that type for that post.
fn remove_pending_never_touches_running_or_finished_operations<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let post = ContextRef::new("blog_posts", 9);
    let create = |conn: &mut B::Connection, kind: &str, context: &ContextRef| {
        BatchOperation::create_asynchronous(kind)
            .context_object(context)
            .insert(conn)
            .unwrap()
    };
    create(&mut conn, "new-blogpost-email", &post);
    create(&mut conn, "new-blogpost-email", &post);
    let mut running = create(&mut conn, "new-blogpost-email", &post);
    running.mark_as_running(&mut conn).unwrap();
    let mut finished = create(&mut conn, "new-blogpost-email", &post);
    finished.mark_as_running(&mut conn).unwrap();
    finished.finish(&mut conn).unwrap();
    let other_post = create(
        &mut conn,
        "new-blogpost-email",
        &ContextRef::new("blog_posts", 10),
    );
    let other_type = create(&mut conn, "reindex", &post);

    let removed = OperationFilter::new()
        .operation_type("new-blogpost-email")
        .context_object(&post)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 2);

    let left = OperationFilter::new().load(&mut conn).unwrap();
    assert_eq!(
        ids(&left),
        [
            running.id(),
            finished.id(),
            other_post.id(),
            other_type.id()
        ]
    );
    assert_eq!(
        BatchOperation::find(&mut conn, running.id()).unwrap(),
        running
    );
    assert_eq!(
        BatchOperation::find(&mut conn, finished.id()).unwrap(),
        finished
    );

    // Asking for running ones explicitly still removes nothing.
    let none = OperationFilter::new()
        .status(Status::Running)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(none, 0);
}

/// Keys match exactly on every backend: no collation may treat `"7 "` as `"7"` (MySQL's PAD SPACE
/// collations do), or removing one object's pending work would remove another's.
fn keys_match_exactly_including_trailing_spaces<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let seven = ContextRef::new("posts", "7");
    let seven_padded = ContextRef::new("posts", "7 ");
    let exact = BatchOperation::create_asynchronous("email")
        .context_object(&seven)
        .insert(&mut conn)
        .unwrap();
    let padded = BatchOperation::create_asynchronous("email ")
        .context_object(&seven_padded)
        .insert(&mut conn)
        .unwrap();
    let by_type = OperationFilter::new().operation_type("email");
    assert_eq!(ids(&by_type.load(&mut conn).unwrap()), [exact.id()]);
    let by_context = OperationFilter::new().context_object(&seven);
    assert_eq!(ids(&by_context.load(&mut conn).unwrap()), [exact.id()]);
    assert_eq!(by_context.remove_pending(&mut conn).unwrap(), 1);
    let left = OperationFilter::new().load(&mut conn).unwrap();
    assert_eq!(ids(&left), [padded.id()]);
    assert_eq!(left[0].operation_type(), "email ");
    assert_eq!(left[0].context_object_id(), Some("7 "));
}

/// Bounds outside the years every backend stores (0001–9999) still select correctly.
fn created_before_accepts_any_instant<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    BatchOperation::create_asynchronous("email")
        .insert(&mut conn)
        .unwrap();
    let all = OperationFilter::new().created_before(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    assert_eq!(all.count(&mut conn).unwrap(), 1);
    let none = OperationFilter::new().created_before(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    assert_eq!(none.count(&mut conn).unwrap(), 0);
}

backend_tests!(
    filters_by_type_context_and_status,
    created_before_is_exact_to_the_microsecond,
    remove_pending_never_touches_running_or_finished_operations,
    keys_match_exactly_including_trailing_spaces,
    created_before_accepts_any_instant,
);
