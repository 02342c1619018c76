//! Values from the database (and from the request: filters, paths, the flash message) are
//! escaped wherever a page shows them, in text and in attributes: an operation whose every
//! field holds markup renders it as text on every page, and the metrics escape label values.

use batchframework_diesel::admin;
use batchframework_diesel::BatchOperation;
use batchframework_tests::{backend_tests, TestBackend};
use batchframework_web::Options;
use chrono::{Duration, Utc};
use serde_json::json;

use super::support::{age, context, form, pending, queue_row, Dashboard, Reply, BASE};

backend_tests!(values_are_escaped_on_every_page);

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
const SCRIPT_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const IMG_ESCAPED: &str = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;";

/// Neither payload is in the page as markup.
#[track_caller]
fn assert_inert(page: &Reply, what: &str) {
    assert!(page.is_html(), "{what} is not a page");
    for raw in ["<script>alert(1)", "<img src=x", "<img"] {
        assert!(
            !page.body.contains(raw),
            "{what} holds `{raw}`:\n{}",
            page.body
        );
    }
    assert_eq!(
        page.body.matches("<script").count(),
        1,
        "{what}: only the dashboard's own script"
    );
}

/// The page shows `escaped` (a payload as text).
#[track_caller]
fn assert_shows(page: &Reply, escaped: &str, what: &str) {
    assert!(
        page.body.contains(escaped),
        "{what} does not show `{escaped}`:\n{}",
        page.body
    );
}

fn values_are_escaped_on_every_page<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let conn = &mut d.conn;
    let mut plain = BatchOperation::create_asynchronous(SCRIPT)
        .queue(IMG)
        .started_by(SCRIPT)
        .context_object(&context(IMG, SCRIPT))
        .input(&json!({SCRIPT: IMG, "list": [SCRIPT, IMG]}))
        .insert(conn)
        .unwrap();
    plain.mark_as_running(conn).unwrap();
    plain
        .finish_failed(conn, &json!({"error": format!("{SCRIPT} {IMG}")}))
        .unwrap();
    age::<B>(conn, plain.id(), Utc::now() - Duration::days(2));
    let mut run = BatchOperation::create_asynchronous(IMG)
        .queue(SCRIPT)
        .started_by(IMG)
        .context_object(&context(SCRIPT, IMG))
        .input(&json!(SCRIPT))
        .insert(conn)
        .unwrap();
    run.mark_as_running(conn).unwrap();
    run.finish_failed(
        conn,
        &json!({
            "actiongroup_name": SCRIPT,
            "results": [
                {"action_name": IMG, "failed": false, "errordata": null,
                 "success_output_data": {SCRIPT: IMG}},
                {"action_name": SCRIPT, "failed": true,
                 "errordata": {"data": IMG, "traceback": SCRIPT},
                 "success_output_data": null},
            ],
            "previous_attempts": [{"error": SCRIPT}],
        }),
    )
    .unwrap();
    let waiting = pending::<B>(conn, SCRIPT, IMG);
    admin::pause_queue(conn, SCRIPT).unwrap();

    let page = d.client.get(BASE);
    page.expect(200);
    assert_inert(&page, "the overview");
    assert_shows(&page, SCRIPT_ESCAPED, "the overview");
    assert_shows(
        &page,
        &format!("<tr data-queue=\"{IMG_ESCAPED}\""),
        "the overview",
    );
    assert_eq!(queue_row(&page.body, IMG)[0], IMG);
    assert_eq!(queue_row(&page.body, SCRIPT)[8], "paused");
    assert!(
        page.text().contains(&format!("{SCRIPT}: {IMG}")),
        "the failure's summary"
    );

    let lists = [
        String::new(),
        form(&[("queue", IMG)]),
        form(&[("operation_type", SCRIPT)]),
        form(&[("started_by", SCRIPT)]),
        form(&[("context_type", IMG), ("context_id", SCRIPT)]),
        form(&[
            ("queue", SCRIPT),
            ("operation_type", IMG),
            ("started_by", IMG),
        ]),
    ];
    for query in &lists {
        let page = d.client.get(&format!("{BASE}/operations?{query}"));
        page.expect(200);
        assert_inert(&page, &format!("the list ?{query}"));
        assert!(
            !super::support::listed_ids(&page.body).is_empty(),
            "?{query} lists the operation"
        );
        assert_shows(&page, SCRIPT_ESCAPED, &format!("the list ?{query}"));
        assert_shows(&page, IMG_ESCAPED, &format!("the list ?{query}"));
    }

    for id in [plain.id(), run.id(), waiting.id()] {
        let page = d.client.get(&format!("{BASE}/operations/{id}"));
        page.expect(200);
        assert_inert(&page, &format!("operation {id}"));
        assert_shows(&page, SCRIPT_ESCAPED, &format!("operation {id}"));
        assert_shows(&page, IMG_ESCAPED, &format!("operation {id}"));
    }
    let page = d.client.get(&format!("{BASE}/operations/{}", run.id()));
    assert!(page.body.contains("<table class=\"action-results\">"));
    assert!(page.body.contains("<ol class=\"attempts\">"));
    assert!(page.text().contains(&format!("Traceback {SCRIPT}")));

    let page = d.client.get(&format!(
        "{BASE}/prune?{}",
        form(&[("older_than", "1d"), ("operation_type", SCRIPT)])
    ));
    page.expect(200);
    assert_inert(&page, "the prune page");
    assert_shows(
        &page,
        &format!("name=\"operation_type\" value=\"{SCRIPT_ESCAPED}\""),
        "the prune form",
    );
    assert!(page.body.contains("<form id=\"prune\""), "one to prune");

    // What the request says is escaped in error pages too.
    for (path, status) in [
        (
            format!("{BASE}/operations?{}", form(&[("status", SCRIPT)])),
            400,
        ),
        (
            format!("{BASE}/operations?{}", form(&[("created_after", IMG)])),
            400,
        ),
        (
            format!("{BASE}/prune?{}", form(&[("older_than", SCRIPT)])),
            400,
        ),
        (
            format!("{BASE}/assets/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            404,
        ),
        (format!("{BASE}/operations/%22%3E%3Cimg%20src%3Dx%3E"), 400),
    ] {
        let page = d.client.get(&path);
        page.expect(status);
        assert_inert(&page, &path);
        assert!(
            page.body.contains(SCRIPT_ESCAPED) || page.body.contains("&quot;&gt;&lt;img src=x"),
            "{path} shows the value it refuses:\n{}",
            page.body
        );
    }

    // The flash message names the queue: escaped too.
    let encoded: String = url::form_urlencoded::byte_serialize(IMG.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    d.client
        .post_form(&format!("{BASE}/queues/{encoded}/pause"), &[])
        .expect(303);
    let mut paused = admin::paused_queues(&mut d.conn).unwrap();
    paused.sort();
    assert_eq!(paused, [IMG.to_owned(), SCRIPT.to_owned()]);
    let page = d.client.get(BASE);
    assert_inert(&page, "the overview with a message");
    assert_eq!(
        page.flash().unwrap(),
        format!("Queue {IMG} is paused: workers claim nothing from it until it is resumed.")
    );

    // Metrics are text, with label values escaped as the format says.
    let metrics = d.client.get(&format!("{BASE}/metrics"));
    metrics.expect(200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(metrics.body.contains(
        "batchframework_queue_depth{queue=\"\\\"><img src=x onerror=alert(1)>\",state=\"due\"} 1\n"
    ));
}
