//! `prune`: `--dry-run` counts exactly what a prune then deletes.

use batchframework_diesel::{BatchOperation, OperationFilter};
use batchframework_tests::{backend_tests, TestBackend};
use serde_json::json;

use crate::support::Db;

backend_tests!(dry_run_counts_what_prune_deletes);

fn dry_run_counts_what_prune_deletes<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    for i in 0..5 {
        let mut op = BatchOperation::create_synchronous(if i < 3 { "import" } else { "export" })
            .insert(&mut conn)
            .unwrap();
        if i % 2 == 0 {
            op.finish(&mut conn).unwrap();
        } else {
            op.finish_failed(&mut conn, &"broken").unwrap();
        }
    }
    BatchOperation::create_asynchronous("import")
        .insert(&mut conn)
        .unwrap(); // pending: never pruned
    let count = |conn: &mut B::Connection| OperationFilter::new().count(conn).unwrap();

    // Nothing finished 30 days ago.
    let none = db
        .run(&["prune", "--older-than", "30d", "--dry-run", "--json"])
        .json();
    assert_eq!(none["count"], 0);
    assert_eq!(none["dry_run"], true);

    // Everything finished before now ("0s" ago), narrowed by type and result.
    let dry = db
        .run(&[
            "prune",
            "--older-than",
            "0s",
            "--type",
            "import",
            "--result",
            "successful",
            "--dry-run",
            "--json",
        ])
        .json();
    assert_eq!(dry["count"], 2);
    let text = db
        .run(&["prune", "--older-than", "0s", "--dry-run"])
        .ok()
        .to_owned();
    assert!(
        text.starts_with("would delete 5 finished operations"),
        "{text}"
    );
    assert_eq!(count(&mut conn), 6, "a dry run deletes nothing");

    let pruned = db
        .run(&[
            "prune",
            "--older-than",
            "0s",
            "--type",
            "import",
            "--result",
            "successful",
            "--json",
        ])
        .json();
    assert_eq!(pruned["count"], 2);
    assert_eq!(pruned["dry_run"], false);
    assert_eq!(count(&mut conn), 4);
    let text = db
        .run(&["prune", "--older-than", "0s", "--batch-size", "1"])
        .ok()
        .to_owned();
    assert!(text.starts_with("deleted 3 finished operations"), "{text}");
    assert_eq!(count(&mut conn), 1, "the pending operation stays");
    let after = db
        .run(&["prune", "--older-than", "0s", "--dry-run", "--json"])
        .json();
    assert_eq!(after["count"], json!(0));
}
