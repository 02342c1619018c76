//! `migrate`, `status`, `list` and `show`: what an operator reads, as text and as JSON.

use batchframework_diesel::batch::Child;
use batchframework_diesel::registry::{Registry, RunArgs};
use batchframework_diesel::workflow::Step;
use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter};
use batchframework_tests::{backend_tests, TestBackend};
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::support::{assert_human_snapshot, Db};

backend_tests!(
    migrate_then_status_on_an_empty_database,
    status_counts_per_queue,
    list_filters_and_pages,
    show_prints_every_field,
    show_prints_a_batchs_progress,
);

fn migrate_then_status_on_an_empty_database<B: TestBackend>() {
    let db = Db::<B>::empty();
    let first = db.run(&["migrate"]);
    let text = first.ok();
    assert!(text.starts_with("applied "), "{text}");
    assert!(text.lines().count() > 2, "{text}");
    let again = db.run(&["migrate", "--json"]).json();
    assert_eq!(again, json!({"applied": []}));
    assert_eq!(
        db.run(&["migrate"]).ok(),
        "no pending migrations: the database is up to date\n"
    );

    assert_human_snapshot!("status_empty", db.run(&["status"]).ok());
    let status = db.run(&["status", "--json"]).json();
    assert_eq!(status["queues"], json!([]));
    assert_eq!(status["limit"], 1000);
}

/// Two finished (one failed), one delayed on `default`; one due on `mail`, one running.
fn seed<B: TestBackend>(db: &Db<B>) -> [BatchOperation; 5] {
    let mut conn = db.connect();
    let game = ContextRef::new("games", 7);
    let mut import = BatchOperation::create_synchronous("import")
        .context_object(&game)
        .started_by("ann")
        .input(&json!({"file": "players.csv", "rows": 3}))
        .insert(&mut conn)
        .unwrap();
    import
        .finish_with_output(&mut conn, &json!({"imported": 3}))
        .unwrap();
    let mut failed = BatchOperation::create_synchronous("import")
        .insert(&mut conn)
        .unwrap();
    failed
        .finish_failed(&mut conn, &json!({"error": "file not found"}))
        .unwrap();
    let delayed = BatchOperation::create_asynchronous("send-email")
        .run_after(Utc::now() + Duration::hours(1))
        .insert(&mut conn)
        .unwrap();
    let due = BatchOperation::create_asynchronous("send-email")
        .queue("mail")
        .insert(&mut conn)
        .unwrap();
    let mut running = BatchOperation::create_asynchronous("deal-cards")
        .queue("mail")
        .max_attempts(5)
        .insert(&mut conn)
        .unwrap();
    running.mark_as_running(&mut conn).unwrap();
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET progress_done = 40, progress_total = 100 \
         WHERE id = {}",
        running.id()
    ))
    .unwrap();
    running.reload(&mut conn).unwrap();
    [import, failed, delayed, due, running]
}

fn status_counts_per_queue<B: TestBackend>() {
    let db = Db::<B>::migrated();
    seed(&db);
    let status = db.run(&["status", "--json"]).json();
    let queues = status["queues"].as_array().unwrap();
    let names: Vec<&str> = queues
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "mail"]);
    let exact = |n: u64| json!({"value": n, "exact": true});
    let default = &queues[0];
    assert_eq!(default["paused"], false);
    assert_eq!(default["due"], exact(0));
    assert_eq!(default["delayed"], exact(1));
    assert_eq!(default["running"], exact(0));
    assert_eq!(default["failed"]["last_hour"], exact(1));
    assert_eq!(default["succeeded"]["last_day"], exact(1));
    assert_eq!(default["oldest_due"], serde_json::Value::Null);
    assert_eq!(default["lag_seconds"], serde_json::Value::Null);
    assert!(default["finished_per_minute"]["5m"].as_f64().unwrap() > 0.0);
    let mail = &queues[1];
    assert_eq!(mail["due"], exact(1));
    assert_eq!(mail["running"], exact(1));
    assert!(mail["lag_seconds"].as_f64().unwrap() >= 0.0);

    // Counts stop at --limit.
    let limited = db.run(&["status", "--json", "--limit", "1"]).json();
    assert_eq!(limited["limit"], 1);
    assert_eq!(limited["queues"][0]["delayed"], exact(1));

    // Human output: the mail queue's lag changes from run to run, so only `default` is
    // pinned (the row of a queue with nothing due).
    let text = db.run(&["status"]).ok().to_owned();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("QUEUE"), "{text}");
    assert!(header.contains("DONE/MIN 5m/60m"), "{text}");
    let default_row = text.lines().find(|l| l.starts_with("default")).unwrap();
    let cells: Vec<&str> = default_row.split_whitespace().collect();
    assert_eq!(
        &cells[..8],
        ["default", "no", "0", "1", "0", "1/1", "1/1", "-"],
        "{text}"
    );
    let mail_row = text.lines().find(|l| l.starts_with("mail")).unwrap();
    let cells: Vec<&str> = mail_row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["mail", "no", "1", "0", "1"], "{text}");
    assert!(text.contains("operations in the table: "), "{text}");
}

fn list_filters_and_pages<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let ops = seed(&db);
    let ids: Vec<i64> = ops.iter().map(BatchOperation::id).collect();

    assert_human_snapshot!("list", db.run(&["list"]).ok());

    let listed = |args: &[&str]| -> Vec<i64> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        let page = db.run(&all).json();
        page["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["id"].as_i64().unwrap())
            .collect()
    };
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(listed(&[]), newest_first);
    assert_eq!(listed(&["--type", "import"]), [ids[1], ids[0]]);
    assert_eq!(listed(&["--queue", "mail"]), [ids[4], ids[3]]);
    assert_eq!(listed(&["--status", "running"]), [ids[4]]);
    assert_eq!(listed(&["--result", "failed"]), [ids[1]]);
    assert_eq!(listed(&["--result", "not-available"]).len(), 3);
    assert_eq!(listed(&["--context", "games:7"]), [ids[0]]);
    assert_eq!(listed(&["--started-by", "ann"]), [ids[0]]);
    assert_eq!(listed(&["--created-after", "1h"]).len(), 5);
    assert_eq!(listed(&["--created-before", "1h"]), Vec::<i64>::new());
    let tomorrow = (Utc::now() + Duration::days(1)).to_rfc3339();
    assert_eq!(listed(&["--created-before", &tomorrow]).len(), 5);

    // Keyset pages: a full page says where the next one starts.
    let page = db.run(&["list", "--json", "--limit", "2"]).json();
    assert_eq!(page["next_after_id"], ids[3]);
    let next = ids[3].to_string();
    let second = db
        .run(&["list", "--json", "--limit", "2", "--after-id", &next])
        .json();
    assert_eq!(second["operations"][0]["id"], ids[2]);
    let text = db.run(&["list", "--limit", "2"]).ok().to_owned();
    assert!(
        text.ends_with(&format!("next page: --after-id {}\n", ids[3])),
        "{text}"
    );
    let last = db
        .run(&["list", "--json", "--after-id", &ids[1].to_string()])
        .json();
    assert_eq!(last["next_after_id"], serde_json::Value::Null);
    assert_eq!(
        db.run(&["list", "--type", "nothing"]).ok(),
        "no batch operations match\n"
    );
}

fn show_prints_every_field<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let ops = seed(&db);
    let import = ops[0].id().to_string();
    assert_human_snapshot!("show_finished", db.run(&["show", &import]).ok());
    let running = ops[4].id().to_string();
    assert_human_snapshot!("show_running", db.run(&["show", &running]).ok());

    let json = db.run(&["show", "--json", &import]).json();
    assert_eq!(json, serde_json::to_value(&ops[0]).unwrap());
    assert_eq!(
        json["input_data"],
        json!({"file": "players.csv", "rows": 3})
    );
    assert_eq!(json["context_object_type"], "games");
}

/// A batch's parent shows how far its children have come; a child shows its batch.
fn show_prints_a_batchs_progress<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    let registry = Registry::<B::Connection>::builder()
        .group_with("import-file", |group| {
            group
                .asynchronous()
                .action_fn("read", |_| Ok(serde_json::Value::Null))
        })
        .build()
        .unwrap();
    let children = (0..3).map(|_| Child::new("import-file", RunArgs::new()));
    let parent = registry
        .batch("import")
        .enqueue(&mut conn, children)
        .unwrap();
    let mut kids = OperationFilter::new()
        .parent(parent.id())
        .load(&mut conn)
        .unwrap();
    kids[0].mark_as_running(&mut conn).unwrap();
    kids[0].finish(&mut conn).unwrap();

    let shown = db.run(&["show", &parent.id().to_string()]);
    let text = shown.ok();
    assert!(
        text.contains("1 of 3 finished (33%): 1 succeeded, 0 failed"),
        "{text}"
    );
    let child = db.run(&["show", &kids[1].id().to_string()]);
    let text = child.ok();
    assert!(
        text.contains(&format!("child of {}", parent.id())),
        "{text}"
    );
    assert!(!text.contains("waiting"), "{text}");

    // A workflow step that waits for another says so.
    let workflow = registry
        .workflow("flow")
        .step(Step::new("first", "import-file", RunArgs::new()))
        .step(Step::new("second", "import-file", RunArgs::new()).after(["first"]))
        .enqueue(&mut conn)
        .unwrap();
    let second = workflow.step_id("second").unwrap();
    let shown = db.run(&["show", &second.to_string()]);
    let text = shown.ok();
    assert!(
        text.contains("for the workflow steps it depends on"),
        "{text}"
    );
}
