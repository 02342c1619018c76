//! The action registry run synchronously, and asynchronous groups recorded for workers.

use std::time::Duration;

use batchframework_diesel::registry::{
    action_fn, ActionError, ActionGroup, ActionGroupResult, Registry, RunArgs,
};
use batchframework_diesel::{
    BatchOperation, ContextRef, Error, OperationFilter, OperationResult, Status,
};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use serde_json::{json, Value};

fn registry<B: TestBackend>() -> Registry<B::Connection> {
    Registry::builder()
        .queue("emails")
        .group(
            ActionGroup::new("import")
                .action(action_fn("read", |ctx| {
                    let input: Value = ctx.input()?.unwrap_or(Value::Null);
                    Ok(json!({ "read": input["file"] }))
                }))
                .action(action_fn("store", |_| Ok(json!(3)))),
        )
        .group(
            ActionGroup::new("flaky")
                .action(action_fn("first", |_| Ok(json!("one"))))
                .action(action_fn("fails", |_| {
                    Err(std::io::Error::other("disk full").into())
                }))
                .action(action_fn("panics", |_| panic!("index out of range")))
                .action(action_fn("last", |ctx| {
                    // Proves it ran: it leaves a row behind.
                    BatchOperation::create_synchronous("last-ran")
                        .insert(ctx.conn())
                        .map_err(ActionError::from)?;
                    Ok(json!("four"))
                })),
        )
        .group(
            ActionGroup::new("new-blogpost-email")
                .asynchronous()
                .queue("emails")
                .max_attempts(3)
                .action(action_fn("send", |_| Ok(Value::Null))),
        )
        .build()
        .unwrap()
}

fn a_synchronous_run_records_the_operation_and_the_group_result<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let game = ContextRef::new("games", 4);
    let info = registry::<B>()
        .run(
            &mut conn,
            "import",
            RunArgs::new()
                .context_object(&game)
                .started_by("admin")
                .input(&json!({"file": "users.csv"})),
        )
        .unwrap();
    let stored = BatchOperation::find(&mut conn, info.operation.id()).unwrap();
    assert_eq!(stored, info.operation);
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Successful)
    );
    assert!(stored.started_running_datetime().is_some());
    assert_eq!(stored.context_object_id(), Some("4"));
    assert_eq!(stored.started_by(), Some("admin"));
    // ievv_batchframework's JSON shape, with each action's returned value.
    let output: Value = stored.output_data().unwrap().unwrap();
    assert_eq!(
        output,
        json!({
            "actiongroup_name": "import",
            "results": [
                {"action_name": "read", "failed": false, "errordata": null,
                 "success_output_data": {"read": "users.csv"}},
                {"action_name": "store", "failed": false, "errordata": null,
                 "success_output_data": 3},
            ]
        })
    );
    assert_eq!(
        info.result,
        stored.output_data::<ActionGroupResult>().unwrap()
    );
}

fn failing_and_panicking_actions_are_recorded_and_later_ones_still_run<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let info = registry::<B>()
        .run(&mut conn, "flaky", RunArgs::new())
        .unwrap();
    assert_eq!(info.operation.result(), OperationResult::Failed);
    let result = info.result.unwrap();
    let failed: Vec<(&str, bool)> = result
        .results
        .iter()
        .map(|r| (r.action_name.as_str(), r.failed))
        .collect();
    assert_eq!(
        failed,
        [
            ("first", false),
            ("fails", true),
            ("panics", true),
            ("last", false)
        ]
    );
    let io = result.results[1].errordata.as_ref().unwrap();
    assert_eq!(io.data, json!("disk full"));
    let panic = result.results[2].errordata.as_ref().unwrap();
    assert_eq!(panic.data, json!("index out of range"));
    assert!(panic.traceback.contains("panicked"), "{}", panic.traceback);
    assert_eq!(result.results[3].success_output_data, Some(json!("four")));
    assert_eq!(
        OperationFilter::new()
            .operation_type("last-ran")
            .count(&mut conn)
            .unwrap(),
        1
    );
    let stored = BatchOperation::find(&mut conn, info.operation.id()).unwrap();
    assert_eq!(
        stored.output_data::<ActionGroupResult>().unwrap(),
        Some(result)
    );
}

fn an_unknown_group_is_an_error_and_writes_nothing<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let error = registry::<B>()
        .run(&mut conn, "nope", RunArgs::new())
        .unwrap_err();
    assert!(
        matches!(&error, Error::UnknownActionGroup { name, .. } if name == "nope"),
        "{error:?}"
    );
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
}

fn an_asynchronous_group_is_recorded_for_a_worker<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let post = ContextRef::new("blog_posts", 9);
    let before = chrono::Utc::now();
    let info = registry::<B>()
        .run(
            &mut conn,
            "new-blogpost-email",
            RunArgs::new()
                .context_object(&post)
                .delay(Duration::from_secs(15 * 60)),
        )
        .unwrap();
    assert!(info.result.is_none());
    let stored = BatchOperation::find(&mut conn, info.operation.id()).unwrap();
    assert_eq!(stored, info.operation);
    assert_eq!(stored.status(), Status::Unprocessed);
    assert_eq!((stored.queue(), stored.max_attempts()), ("emails", 3));
    let run_after = stored.run_after().unwrap();
    assert!(
        run_after >= before + chrono::Duration::minutes(15),
        "{run_after}"
    );
}

fn always_synchronous_runs_every_group_inline<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let registry: Registry<B::Connection> = Registry::builder()
        .group(
            ActionGroup::new("new-blogpost-email")
                .asynchronous()
                .action(action_fn("send", |_| Ok(json!("sent")))),
        )
        .always_synchronous(true)
        .build()
        .unwrap();
    assert!(registry.is_always_synchronous());
    let info = registry
        .run(
            &mut conn,
            "new-blogpost-email",
            RunArgs::new().delay(Duration::from_secs(900)),
        )
        .unwrap();
    assert_eq!(
        info.operation.status(),
        Status::Finished,
        "ran now, the delay ignored"
    );
    assert_eq!(
        info.result.unwrap().results[0].success_output_data,
        Some(json!("sent"))
    );
}

fn a_delay_on_a_synchronous_group_is_refused<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let error = registry::<B>()
        .run(
            &mut conn,
            "import",
            RunArgs::new().delay(Duration::from_secs(60)),
        )
        .unwrap_err();
    assert!(
        matches!(error, Error::DelayedSynchronousRun { .. }),
        "{error:?}"
    );
    assert_eq!(OperationFilter::new().count(&mut conn).unwrap(), 0);
}

/// Progress is written (throttled) and a cancel request is visible to the action.
fn actions_report_progress_and_see_cancel_requests<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let registry: Registry<B::Connection> = Registry::builder()
        .group(ActionGroup::new("long").action(action_fn("work", |ctx| {
            ctx.progress(10, Some(100))?;
            ctx.progress(20, Some(100))?; // within 250 ms: dropped
            let id = ctx.operation().id();
            let progress = BatchOperation::find(ctx.conn(), id)?.progress();
            ctx.progress(100, Some(100))?; // all done: written at once
            let done = BatchOperation::find(ctx.conn(), id)?.progress();
            let before = ctx.is_cancel_requested()?;
            let mut op = ctx.operation().clone();
            let flagged = op.request_cancel(ctx.conn())?;
            let after = ctx.is_cancel_requested()?;
            Ok(json!({"progress": progress, "done": done, "before": before, "flagged": flagged, "after": after}))
        })))
        .build()
        .unwrap();
    let info = registry.run(&mut conn, "long", RunArgs::new()).unwrap();
    let output = info.result.unwrap().results[0].success_output_data.clone();
    assert_eq!(
        output,
        Some(
            json!({"progress": [10, 100], "done": [100, 100], "before": false, "flagged": true, "after": true})
        )
    );
    // A finished operation has nothing to cancel.
    let mut finished = info.operation;
    assert!(!finished.request_cancel(&mut conn).unwrap());
}

backend_tests!(
    a_synchronous_run_records_the_operation_and_the_group_result,
    failing_and_panicking_actions_are_recorded_and_later_ones_still_run,
    an_unknown_group_is_an_error_and_writes_nothing,
    an_asynchronous_group_is_recorded_for_a_worker,
    always_synchronous_runs_every_group_inline,
    a_delay_on_a_synchronous_group_is_refused,
    actions_report_progress_and_see_cancel_requests,
);

/// Mistakes in a registry are reported when it is built, before any operation is run.
#[test]
fn an_invalid_registry_is_refused_at_build() {
    type Conn = diesel::SqliteConnection;
    let noop = || action_fn("noop", |_: &mut _| Ok(Value::Null));
    let build = |builder: batchframework_diesel::registry::RegistryBuilder<Conn>| builder.build();
    for (builder, reason) in [
        (
            Registry::<Conn>::builder().group(ActionGroup::new("g").action(noop()).action(noop())),
            "two actions named `noop`",
        ),
        (
            Registry::<Conn>::builder().group(ActionGroup::new("g")),
            "no actions",
        ),
        (
            Registry::<Conn>::builder().group(ActionGroup::new("g").queue("emails").action(noop())),
            "queue `emails` is not declared",
        ),
        (
            Registry::<Conn>::builder()
                .group(ActionGroup::new("g").action(noop()))
                .group(ActionGroup::new("g").action(noop())),
            "same name",
        ),
    ] {
        let error = build(builder).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidActionGroup { reason: r, .. } if r.contains(reason)),
            "{reason}: {error:?}"
        );
    }
}
