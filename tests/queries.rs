//! Queries by type, context object, status, result, queue, user and creation time; their order
//! and keyset paging; removal of pending work; and operations as JSON.

use batchframework_diesel::{
    BatchOperation, ContextRef, Error, OperationFilter, OperationOrder, OperationResult, Status,
};
use batchframework_tests::{backend_tests, migrated, StatementCounter, TestBackend};
use chrono::{DateTime, Duration, Utc};

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
        [other_email.id(), email.id()],
        "exact, case-sensitive match on every backend, newest first"
    );
    let by_context = OperationFilter::new().context_object(&post);
    assert_eq!(ids(&by_context.load(&mut conn).unwrap()), [email.id()]);
    // Same id, other type key: not the same object.
    let by_game = OperationFilter::new().context_object(&game);
    assert_eq!(ids(&by_game.load(&mut conn).unwrap()), [deal.id()]);
    let running = OperationFilter::new().status(Status::Running);
    assert_eq!(
        ids(&running.load(&mut conn).unwrap()),
        [untyped.id(), deal.id()]
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

/// The documented cancel case: removing a post's pending email removes only pending operations
/// of that type for that post.
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

    let left = OperationFilter::new()
        .order_by(OperationOrder::IdAscending)
        .load(&mut conn)
        .unwrap();
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
    let all = OperationFilter::new().created_after(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    assert_eq!(all.count(&mut conn).unwrap(), 1);
    let none = OperationFilter::new().created_after(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    assert_eq!(none.count(&mut conn).unwrap(), 0);
}

pub(crate) use batchframework_tests::set_timestamp;

/// `n` pending operations of type `kind`, oldest first.
fn create_many<B: TestBackend>(conn: &mut B::Connection, kind: &str, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| {
            BatchOperation::create_asynchronous(kind)
                .insert(conn)
                .unwrap()
                .id()
        })
        .collect()
}

fn filters_by_result_queue_and_started_by<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut failed = BatchOperation::create_synchronous("import")
        .started_by("ann")
        .insert(&mut conn)
        .unwrap();
    failed.finish_failed(&mut conn, &"file not found").unwrap();
    let mut succeeded = BatchOperation::create_synchronous("import")
        .started_by(42)
        .insert(&mut conn)
        .unwrap();
    succeeded.finish(&mut conn).unwrap();
    let urgent = BatchOperation::create_asynchronous("email")
        .queue("highpriority")
        .started_by("ann")
        .insert(&mut conn)
        .unwrap();
    let ordinary = BatchOperation::create_asynchronous("email")
        .insert(&mut conn)
        .unwrap();

    let load = |filter: OperationFilter, conn: &mut B::Connection| ids(&filter.load(conn).unwrap());
    assert_eq!(
        load(
            OperationFilter::new().result(OperationResult::Failed),
            &mut conn
        ),
        [failed.id()]
    );
    assert_eq!(
        load(
            OperationFilter::new().result(OperationResult::Successful),
            &mut conn
        ),
        [succeeded.id()]
    );
    assert_eq!(
        load(
            OperationFilter::new().result(OperationResult::NotAvailable),
            &mut conn
        ),
        [ordinary.id(), urgent.id()]
    );
    assert_eq!(
        load(OperationFilter::new().queue("highpriority"), &mut conn),
        [urgent.id()]
    );
    assert_eq!(
        load(OperationFilter::new().queue("default"), &mut conn),
        [ordinary.id(), succeeded.id(), failed.id()]
    );
    assert_eq!(
        load(OperationFilter::new().started_by("ann"), &mut conn),
        [urgent.id(), failed.id()]
    );
    assert_eq!(
        load(OperationFilter::new().started_by(42), &mut conn),
        [succeeded.id()]
    );
    assert!(load(OperationFilter::new().started_by("an"), &mut conn).is_empty());
    let combined = OperationFilter::new()
        .started_by("ann")
        .result(OperationResult::Failed)
        .operation_type("import");
    assert_eq!(load(combined.clone(), &mut conn), [failed.id()]);
    assert_eq!(combined.count(&mut conn).unwrap(), 1);
}

/// `created_after` is strict like `created_before`; together they select a window.
fn created_after_is_strict_and_combines_with_created_before<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 3);
    let base = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for (i, id) in ops.iter().enumerate() {
        set_timestamp::<B>(
            &mut conn,
            *id,
            "created_datetime",
            base + Duration::microseconds(i as i64),
        );
    }
    let after = |instant| {
        OperationFilter::new()
            .created_after(instant)
            .order_by(OperationOrder::IdAscending)
    };
    assert_eq!(ids(&after(base).load(&mut conn).unwrap()), &ops[1..]);
    assert_eq!(
        ids(&after(base - Duration::microseconds(1))
            .load(&mut conn)
            .unwrap()),
        ops
    );
    let window = after(base).created_before(base + Duration::microseconds(2));
    assert_eq!(ids(&window.load(&mut conn).unwrap()), [ops[1]]);
    assert_eq!(window.count(&mut conn).unwrap(), 1);
}

/// Newest first by default; both id orders, and both creation-time orders with ties broken by
/// id in the same direction.
fn orders_by_id_and_by_creation_time_both_ways<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 4);
    // Creation times out of id order, the middle two tied.
    let base = Utc::now() - Duration::hours(1);
    for (id, seconds) in ops.iter().zip([30, 10, 10, 0]) {
        set_timestamp::<B>(
            &mut conn,
            *id,
            "created_datetime",
            base + Duration::seconds(seconds),
        );
    }
    let load = |order: Option<OperationOrder>, conn: &mut B::Connection| {
        let filter = OperationFilter::new();
        let filter = match order {
            Some(order) => filter.order_by(order),
            None => filter,
        };
        ids(&filter.load(conn).unwrap())
    };
    let [a, b, c, d] = [ops[0], ops[1], ops[2], ops[3]];
    assert_eq!(load(None, &mut conn), [d, c, b, a], "newest first by id");
    assert_eq!(
        load(Some(OperationOrder::default()), &mut conn),
        [d, c, b, a]
    );
    assert_eq!(
        load(Some(OperationOrder::IdDescending), &mut conn),
        [d, c, b, a]
    );
    assert_eq!(
        load(Some(OperationOrder::IdAscending), &mut conn),
        [a, b, c, d]
    );
    assert_eq!(
        load(Some(OperationOrder::CreatedAscending), &mut conn),
        [d, b, c, a]
    );
    assert_eq!(
        load(Some(OperationOrder::CreatedDescending), &mut conn),
        [a, c, b, d]
    );
}

/// Reads every page of `filter` (pages of 10) and checks each is at most 10 long and uses no
/// OFFSET; returns the ids in the order read.
fn read_all_pages<B: TestBackend>(conn: &mut B::Connection, filter: &OperationFilter) -> Vec<i64> {
    let counter = StatementCounter::install(conn);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut page = filter.clone().limit(10).load(conn).unwrap();
    while let Some(last) = page.last().map(BatchOperation::id) {
        sizes.push(page.len());
        seen.extend(ids(&page));
        page = filter.clone().limit(10).after_id(last).load(conn).unwrap();
    }
    assert_eq!(sizes, [10, 10, 5]);
    for sql in counter.take() {
        assert!(!sql.to_ascii_uppercase().contains("OFFSET"), "{sql}");
    }
    seen
}

/// Paging through 25 operations in pages of 10 yields each exactly once, in order, both ways.
fn paging_by_id_yields_every_operation_once_in_order<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut ops = create_many::<B>(&mut conn, "email", 25);
    // Operations of another type between them: a condition and a keyset together.
    create_many::<B>(&mut conn, "other", 3);

    let emails = OperationFilter::new().operation_type("email");
    let ascending = read_all_pages::<B>(
        &mut conn,
        &emails.clone().order_by(OperationOrder::IdAscending),
    );
    assert_eq!(ascending, ops);
    ops.reverse();
    assert_eq!(read_all_pages::<B>(&mut conn, &emails), ops);

    // By id, the operation after which a page starts need not exist any more. (Removed here
    // by its place: the newest email whose id is below the one after it.)
    let gone = ops[9];
    let removed = OperationFilter::new()
        .operation_type("email")
        .limit(1)
        .after_id(gone + 1)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 1);
    assert!(matches!(
        BatchOperation::find(&mut conn, gone),
        Err(Error::NotFound { .. })
    ));
    let next = emails
        .clone()
        .limit(10)
        .after_id(gone)
        .load(&mut conn)
        .unwrap();
    assert_eq!(ids(&next), &ops[10..20]);
}

/// Paging by creation time uses (created_datetime, id) as the key: every operation once, in
/// order, even with ties in creation time across page boundaries.
fn paging_by_creation_time_yields_every_operation_once_in_order<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 25);
    let base = Utc::now() - Duration::hours(1);
    let mut keys = Vec::new();
    for (i, id) in ops.iter().enumerate() {
        // Out of id order, in pairs of equal times.
        let created = base + Duration::seconds(((i * 7) % 25 / 2) as i64);
        set_timestamp::<B>(&mut conn, *id, "created_datetime", created);
        keys.push((created, *id));
    }
    keys.sort();
    let expected: Vec<i64> = keys.iter().map(|(_, id)| *id).collect();
    assert_ne!(
        expected, ops,
        "the test needs creation order to differ from id order"
    );

    let ascending = OperationFilter::new().order_by(OperationOrder::CreatedAscending);
    assert_eq!(read_all_pages::<B>(&mut conn, &ascending), expected);
    let descending = OperationFilter::new().order_by(OperationOrder::CreatedDescending);
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(read_all_pages::<B>(&mut conn, &descending), reversed);
}

/// By creation time the page key is read from the operation, which must still exist.
fn paging_by_creation_time_after_a_missing_operation_is_not_found<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 2);
    let missing = ops[1] + 100;
    for order in [
        OperationOrder::CreatedAscending,
        OperationOrder::CreatedDescending,
    ] {
        let filter = OperationFilter::new().order_by(order).after_id(missing);
        let error = filter.load(&mut conn).unwrap_err();
        assert!(
            matches!(error, Error::NotFound { id } if id == missing),
            "{error:?}"
        );
        let error = filter.remove_pending(&mut conn).unwrap_err();
        assert!(
            matches!(error, Error::NotFound { id } if id == missing),
            "{error:?}"
        );
    }
    let next = OperationFilter::new()
        .order_by(OperationOrder::CreatedDescending)
        .after_id(ops[1])
        .load(&mut conn)
        .unwrap();
    assert_eq!(ids(&next), [ops[0]]);
}

/// `count` counts every match: the order, the limit and the page start are ignored.
fn count_ignores_order_limit_and_after_id<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 5);
    let filter = OperationFilter::new()
        .operation_type("email")
        .order_by(OperationOrder::CreatedAscending)
        .limit(2)
        .after_id(ops[2]);
    assert_eq!(filter.load(&mut conn).unwrap().len(), 2);
    assert_eq!(filter.count(&mut conn).unwrap(), 5);
    assert!(OperationFilter::new()
        .limit(0)
        .load(&mut conn)
        .unwrap()
        .is_empty());
}

/// `remove_pending` removes at most the limit, the first pending ones in the filter's order,
/// and only those after `after_id`.
fn remove_pending_honours_limit_and_after_id<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let ops = create_many::<B>(&mut conn, "email", 6);
    let mut running = BatchOperation::find(&mut conn, ops[5]).unwrap();
    running.mark_as_running(&mut conn).unwrap();
    let left = |conn: &mut B::Connection| {
        ids(&OperationFilter::new()
            .order_by(OperationOrder::IdAscending)
            .load(conn)
            .unwrap())
    };

    // Newest first: the running one is passed over, the two newest pending ones go.
    let removed = OperationFilter::new()
        .limit(2)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(left(&mut conn), [ops[0], ops[1], ops[2], ops[5]]);

    let removed = OperationFilter::new()
        .order_by(OperationOrder::IdAscending)
        .limit(1)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(left(&mut conn), [ops[1], ops[2], ops[5]]);

    let removed = OperationFilter::new()
        .after_id(ops[2])
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 1, "only ops[1] is pending and before ops[2]");
    assert_eq!(left(&mut conn), [ops[2], ops[5]]);

    let removed = OperationFilter::new()
        .order_by(OperationOrder::CreatedAscending)
        .after_id(ops[1] - 1)
        .limit(5);
    assert!(matches!(
        removed.remove_pending(&mut conn),
        Err(Error::NotFound { .. })
    ));
    let removed = OperationFilter::new()
        .order_by(OperationOrder::CreatedAscending)
        .limit(5)
        .remove_pending(&mut conn)
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(left(&mut conn), [ops[5]]);
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Import {
    // Not in alphabetical order: the stored order must survive.
    zeta: u32,
    alpha: Vec<String>,
}

/// An operation loaded from the database serializes with its JSON data as JSON values, its
/// enums as their stored strings and its times as RFC 3339, and reads back equal.
fn a_loaded_operation_serializes_to_json_and_back<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let mut op = BatchOperation::create_synchronous("import")
        .context_object(&ContextRef::new("files", 7))
        .started_by("ann")
        .input(&Import {
            zeta: 1,
            alpha: vec!["a".into()],
        })
        .insert(&mut conn)
        .unwrap();
    op.finish_with_output(&mut conn, &serde_json::json!({"rows": 3}))
        .unwrap();
    let pending = BatchOperation::create_asynchronous("email")
        .insert(&mut conn)
        .unwrap();

    let loaded = BatchOperation::find(&mut conn, op.id()).unwrap();
    let text = serde_json::to_string(&loaded).unwrap();
    assert!(
        text.contains(r#""input_data":{"zeta":1,"alpha":["a"]}"#),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["id"], loaded.id());
    assert_eq!(json["operation_type"], "import");
    assert_eq!(json["status"], "finished");
    assert_eq!(json["result"], "successful");
    assert_eq!(json["context_object_type"], "files");
    assert_eq!(json["context_object_id"], "7");
    assert_eq!(json["started_by"], "ann");
    assert_eq!(json["output_data"], serde_json::json!({"rows": 3}));
    let created = json["created_datetime"].as_str().unwrap();
    assert_eq!(
        DateTime::parse_from_rfc3339(created).unwrap(),
        loaded.created_datetime()
    );
    assert_eq!(
        serde_json::from_str::<BatchOperation>(&text).unwrap(),
        loaded
    );

    let pending = BatchOperation::find(&mut conn, pending.id()).unwrap();
    let json = serde_json::to_value(&pending).unwrap();
    assert_eq!(json["status"], "unprocessed");
    assert_eq!(json["result"], "not-available");
    assert_eq!(json["input_data"], serde_json::Value::Null);
    assert_eq!(json["finished_datetime"], serde_json::Value::Null);
    assert_eq!(
        serde_json::from_value::<BatchOperation>(json).unwrap(),
        pending
    );
}

backend_tests!(
    filters_by_type_context_and_status,
    created_before_is_exact_to_the_microsecond,
    remove_pending_never_touches_running_or_finished_operations,
    keys_match_exactly_including_trailing_spaces,
    created_before_accepts_any_instant,
    filters_by_result_queue_and_started_by,
    created_after_is_strict_and_combines_with_created_before,
    orders_by_id_and_by_creation_time_both_ways,
    paging_by_id_yields_every_operation_once_in_order,
    paging_by_creation_time_yields_every_operation_once_in_order,
    paging_by_creation_time_after_a_missing_operation_is_not_found,
    count_ignores_order_limit_and_after_id,
    remove_pending_honours_limit_and_after_id,
    a_loaded_operation_serializes_to_json_and_back,
);
