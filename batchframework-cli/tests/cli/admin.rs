//! `retry`, `cancel`, `pause`/`resume` and `watch`: what an operator does about operations.

use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend};
use serde_json::json;

use crate::support::{assert_human_snapshot, Db};

backend_tests!(
    retry_queues_failures_again,
    cancel_finishes_pending_and_asks_running_to_stop,
    pause_and_resume_show_in_status,
    watch_prints_a_finished_operation,
);

fn failed<B: TestBackend>(conn: &mut B::Connection, operation_type: &str) -> BatchOperation {
    let mut op = BatchOperation::create_asynchronous(operation_type)
        .insert(conn)
        .unwrap();
    op.mark_as_running(conn).unwrap();
    op.finish_failed(conn, &json!({"error": "timeout"}))
        .unwrap();
    op
}

fn retry_queues_failures_again<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    let first = failed::<B>(&mut conn, "import");
    let id = first.id().to_string();

    let text = db.run(&["retry", &id]).ok().to_owned();
    assert!(
        text.starts_with(&format!("queued import #{id} again")),
        "{text}"
    );
    let op = BatchOperation::find(&mut conn, first.id()).unwrap();
    assert_eq!(op.status(), Status::Unprocessed);

    // Not failed any more: refused, with the reason.
    let line = db.run(&["retry", &id]).error(1).to_owned();
    assert!(
        line.contains(&format!("cannot retry batch operation {id}")),
        "{line}"
    );
    let mut ok = BatchOperation::create_synchronous("import")
        .insert(&mut conn)
        .unwrap();
    ok.finish(&mut conn).unwrap();
    let line = db.run(&["retry", &ok.id().to_string()]).error(1).to_owned();
    assert!(line.contains("finished successfully"), "{line}");

    // Every failure the filters select, and only those.
    failed::<B>(&mut conn, "import");
    failed::<B>(&mut conn, "import");
    let other = failed::<B>(&mut conn, "export");
    let retried = db
        .run(&["retry", "--all-failed", "--type", "import", "--json"])
        .json();
    assert_eq!(retried, json!({"retried": 2}));
    let other = BatchOperation::find(&mut conn, other.id()).unwrap();
    assert_eq!(other.result(), OperationResult::Failed);
    assert_eq!(
        db.run(&["retry", "--all-failed"]).ok(),
        "queued 1 failed operation again\n"
    );

    // An id or --all-failed, not both, not neither: usage errors.
    db.run(&["retry"]).error(2);
    db.run(&["retry", &id, "--all-failed"]).error(2);
}

fn cancel_finishes_pending_and_asks_running_to_stop<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    let pending = BatchOperation::create_asynchronous("send-email")
        .insert(&mut conn)
        .unwrap();
    let cancelled = db
        .run(&["cancel", &pending.id().to_string(), "--by", "ops", "--json"])
        .json();
    assert_eq!(cancelled["outcome"], "cancelled");
    assert_eq!(cancelled["operation"]["status"], "finished");
    assert_eq!(cancelled["operation"]["result"], "failed");
    assert_eq!(
        cancelled["operation"]["output_data"],
        json!({"cancelled": true, "by": "ops"})
    );

    let mut running = BatchOperation::create_asynchronous("send-email")
        .insert(&mut conn)
        .unwrap();
    running.mark_as_running(&mut conn).unwrap();
    let id = running.id().to_string();
    let text = db.run(&["cancel", &id]).ok().to_owned();
    assert!(
        text.starts_with(&format!("asked send-email #{id} to stop")),
        "{text}"
    );
    running.reload(&mut conn).unwrap();
    assert!(running.cancel_requested());
    assert_eq!(running.status(), Status::Running);

    // Finished: nothing to cancel.
    let line = db
        .run(&["cancel", &pending.id().to_string()])
        .error(1)
        .to_owned();
    assert!(line.contains("cannot cancel batch operation"), "{line}");
}

fn pause_and_resume_show_in_status<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let paused = db.run(&["pause", "mail", "--json"]).json();
    assert_eq!(paused, json!({"queue": "mail", "paused": true}));
    let status = db.run(&["status", "--json"]).json();
    assert_eq!(status["queues"][0]["queue"], "mail");
    assert_eq!(status["queues"][0]["paused"], true);
    assert_human_snapshot!("status_paused", db.run(&["status"]).ok());

    let text = db.run(&["resume", "mail"]).ok().to_owned();
    assert!(text.starts_with("resumed queue `mail`"), "{text}");
    let status = db.run(&["status", "--json"]).json();
    let still_paused = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["paused"] == true);
    assert!(!still_paused, "{status}");
}

fn watch_prints_a_finished_operation<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    let mut ok = BatchOperation::create_synchronous("report")
        .insert(&mut conn)
        .unwrap();
    ok.finish_with_output(&mut conn, &json!({"rows": 12}))
        .unwrap();
    let text = db
        .run(&["watch", &ok.id().to_string(), "--interval", "10ms"])
        .ok()
        .to_owned();
    assert_eq!(
        text,
        format!(
            "report #{} finished: successful\noutput:\n{{\n  \"rows\": 12\n}}\n",
            ok.id()
        )
    );

    let bad = failed::<B>(&mut conn, "report");
    let run = db.run(&["watch", &bad.id().to_string(), "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["result"], "failed");
    assert_eq!(json["output_data"], json!({"error": "timeout"}));

    db.run(&["watch", "1", "--interval", "soon"]).error(2);
}
