//! Every page renders what the database holds: the overview's queue rows and failures, the
//! operations list with each of its filters and its keyset pages, an operation with its input,
//! output, action results, progress and earlier attempts, the prune confirmation, the metrics
//! and the health check, the static files, and the error pages for what does not exist or
//! cannot be read.

use std::sync::Arc;

use batchframework_diesel::admin;
use batchframework_diesel::registry::{action_fn, ActionError, ActionGroup, Registry, RunArgs};
use batchframework_diesel::worker::Worker;
use batchframework_diesel::workflow::Step;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend};
use batchframework_web::Options;
use chrono::{DateTime, Duration, Utc};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

use super::support::{
    age, app, attributes, between, cells, context, element_text, failed, fields, form,
    link_with_class, listed_ids, pending, queue_row, running, succeeded, unescape, Client,
    Dashboard, BASE,
};

backend_tests!(
    overview_shows_each_queue_and_the_latest_failures,
    overview_counts_stop_at_the_count_limit,
    operations_list_filters_by_each_field,
    operations_list_pages_by_keyset_without_overlap_or_gap,
    operations_list_explains_a_bad_filter,
    operation_page_shows_every_field_and_the_input_and_output,
    operation_page_shows_action_results_progress_and_earlier_attempts,
    operation_page_shows_a_batchs_children_and_a_steps_batch,
    prune_page_counts_only_old_finished_operations,
    metrics_report_the_queues_in_prometheus_format,
    healthz_answers_ok_only_once_migrated,
    assets_are_served_with_their_types,
    unknown_pages_and_operations_answer_404_and_malformed_ids_400,
    malformed_requests_answer_an_error_page,
);

/// A query string's fields.
type Query<'a> = &'a [(&'a str, &'a str)];

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The raw contents of the first `<pre class="json">` of `html`, decoded.
fn pre_json(html: &str) -> String {
    let pre = between(html, "<pre class=\"json\">", "</pre>");
    unescape(&pre["<pre class=\"json\">".len()..pre.len() - "</pre>".len()])
}

fn overview_shows_each_queue_and_the_latest_failures<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let page = d.client.get(BASE);
    page.expect(200);
    assert!(page.is_html());
    assert!(page.text().contains("No operations yet"), "{}", page.body);
    assert!(page.text().contains("No failures."), "{}", page.body);

    let conn = &mut d.conn;
    for _ in 0..3 {
        pending::<B>(conn, "mail", "alpha");
    }
    for _ in 0..2 {
        BatchOperation::create_asynchronous("mail")
            .queue("alpha")
            .run_after(Utc::now() + Duration::hours(1))
            .insert(conn)
            .unwrap();
    }
    running::<B>(conn, "mail", "alpha");
    succeeded::<B>(conn, "mail", "alpha");
    let failure = failed::<B>(
        conn,
        "import",
        "alpha",
        &json!({"error": "disk full on /var"}),
    );
    pending::<B>(conn, "report", "beta");
    running::<B>(conn, "report", "beta");
    admin::pause_queue(conn, "beta").unwrap();
    admin::pause_queue(conn, "idle").unwrap();

    let page = d.client.get(BASE);
    page.expect(200);
    // Queue, due, delayed, running, failed 1 h, succeeded 1 h, lag, per minute, paused, actions.
    let alpha = queue_row(&page.body, "alpha");
    assert_eq!(alpha[..6], ["alpha", "3", "2", "1", "1", "1"], "{alpha:?}");
    assert_ne!(alpha[6], "—", "three operations are due: the lag shows");
    assert_eq!((alpha[8].as_str(), alpha[9].as_str()), ("", "Pause"));
    let beta = queue_row(&page.body, "beta");
    assert_eq!(beta[..6], ["beta", "1", "0", "1", "0", "0"], "{beta:?}");
    assert_eq!((beta[8].as_str(), beta[9].as_str()), ("paused", "Resume"));
    assert!(page
        .body
        .contains("<tr data-queue=\"beta\" class=\"is-paused\">"));
    let idle = queue_row(&page.body, "idle");
    assert_eq!(idle[..6], ["idle", "0", "0", "0", "0", "0"], "{idle:?}");
    assert_eq!(idle[6], "—", "nothing due: no lag");
    assert_eq!(idle[8], "paused");
    assert!(!page.text().contains("No operations yet"));

    // The queue's counts link to the list filtered by them.
    let links = attributes(
        between(&page.body, "<tr data-queue=\"alpha\"", "</tr>"),
        "href",
    );
    assert!(
        links.contains(&format!("{BASE}/operations?queue=alpha")),
        "{links:?}"
    );
    assert!(links.contains(&format!("{BASE}/operations?queue=alpha&status=unprocessed")));
    assert!(links.contains(&format!("{BASE}/operations?queue=alpha&result=failed")));

    let failures = between(&page.body, "<section id=\"failures\"", "</section>");
    assert_eq!(listed_ids(failures), [failure.id()]);
    let row = cells(between(failures, "<tr data-id", "</tr>"));
    assert_eq!(row[0], format!("#{}", failure.id()));
    assert_eq!((row[1].as_str(), row[2].as_str()), ("import", "alpha"));
    assert_eq!(row[4], "disk full on /var");
    assert!(attributes(failures, "href").contains(&format!("{BASE}/operations/{}", failure.id())));
}

fn overview_counts_stop_at_the_count_limit<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default().count_limit(5));
    for _ in 0..7 {
        pending::<B>(&mut d.conn, "mail", "busy");
    }
    for _ in 0..3 {
        pending::<B>(&mut d.conn, "mail", "quiet");
    }
    let page = d.client.get(BASE);
    page.expect(200);
    assert_eq!(queue_row(&page.body, "busy")[1], "5+");
    assert_eq!(queue_row(&page.body, "quiet")[1], "3");
    let metrics = d.client.get(&format!("{BASE}/metrics"));
    assert!(metrics
        .body
        .contains("batchframework_queue_depth{queue=\"busy\",state=\"due\"} 5\n"));
}

fn operations_list_filters_by_each_field<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let conn = &mut d.conn;
    let mut one = BatchOperation::create_asynchronous("import")
        .started_by("ann")
        .context_object(&context("game", "7"))
        .insert(conn)
        .unwrap();
    one.mark_as_running(conn).unwrap();
    one.finish(conn).unwrap();
    let mut two = BatchOperation::create_asynchronous("export")
        .queue("mail")
        .started_by("bob")
        .context_object(&context("game", "8"))
        .insert(conn)
        .unwrap();
    two.mark_as_running(conn).unwrap();
    two.finish_failed(conn, &json!({"error": "no"})).unwrap();
    let mut three = BatchOperation::create_asynchronous("import")
        .queue("mail")
        .started_by("ann")
        .insert(conn)
        .unwrap();
    three.mark_as_running(conn).unwrap();
    let four = pending::<B>(conn, "cleanup", "default");
    let [one, two, three, four] = [one.id(), two.id(), three.id(), four.id()];
    for (id, day) in [(one, 1), (two, 2), (three, 3), (four, 4)] {
        super::support::set_timestamp::<B>(
            conn,
            id,
            "created_datetime",
            at(&format!("2026-01-0{day}T10:00:00Z")),
        );
    }

    let cases: &[(Query, &[i64])] = &[
        (&[], &[four, three, two, one]),
        (&[("operation_type", "import")], &[three, one]),
        (&[("status", "unprocessed")], &[four]),
        (&[("status", "running")], &[three]),
        (&[("status", "finished")], &[two, one]),
        (&[("result", "successful")], &[one]),
        (&[("result", "failed")], &[two]),
        (&[("result", "not-available")], &[four, three]),
        (&[("queue", "mail")], &[three, two]),
        (&[("started_by", "ann")], &[three, one]),
        (&[("context_type", "game"), ("context_id", "7")], &[one]),
        (&[("context_type", "game"), ("context_id", "8")], &[two]),
        (&[("created_after", "2026-01-02T12:00")], &[four, three]),
        (&[("created_before", "2026-01-02T12:00")], &[two, one]),
        (
            &[
                ("created_after", "2026-01-01T12:00"),
                ("created_before", "2026-01-03T12:00"),
            ],
            &[three, two],
        ),
        (
            &[("created_after", "2026-01-02T13:00:00+01:00")],
            &[four, three],
        ),
        (&[("created_after", "2026-01-02")], &[four, three, two]),
        (&[("operation_type", "import"), ("queue", "mail")], &[three]),
        (&[("status", "finished"), ("result", "failed")], &[two]),
        // A browser sends the form's empty fields too: they are no condition.
        (
            &[
                ("operation_type", ""),
                ("status", ""),
                ("created_after", " "),
            ],
            &[four, three, two, one],
        ),
        (&[("queue", "nowhere")], &[]),
    ];
    for (query, expected) in cases {
        let page = d.client.get(&format!("{BASE}/operations?{}", form(query)));
        page.expect(200);
        assert_eq!(listed_ids(&page.body), *expected, "filter {query:?}");
        if expected.is_empty() {
            assert!(page.text().contains("No operation matches."));
        }
    }

    // The form shows the filters it was given.
    let page = d.client.get(&format!(
        "{BASE}/operations?queue=mail&result=failed&status=finished"
    ));
    assert!(
        page.body.contains("name=\"queue\" value=\"mail\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("<option value=\"failed\" selected>"));
    assert!(page.body.contains("<option value=\"finished\" selected>"));

    // `?id=` goes to the operation.
    for given in [two.to_string(), format!("#{two}"), format!(" {two} ")] {
        let reply = d
            .client
            .get(&format!("{BASE}/operations?{}", form(&[("id", &given)])));
        reply.expect(303);
        assert_eq!(reply.location(), format!("{BASE}/operations/{two}"));
    }
}

fn operations_list_pages_by_keyset_without_overlap_or_gap<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let mut evens = Vec::new();
    let ids: Vec<i64> = (0..120)
        .map(|i| {
            let kind = if i % 2 == 0 { "even" } else { "odd" };
            let id = pending::<B>(&mut d.conn, kind, "default").id();
            if kind == "even" {
                evens.push(id);
            }
            id
        })
        .collect();

    // Follows the "Older" links from `first` and returns each page's ids.
    let pages = |client: &mut Client, first: &str| {
        let mut pages = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next {
            let page = client.get(&url);
            page.expect(200);
            pages.push(listed_ids(&page.body));
            // Past the first page, a link back to the newest.
            assert_eq!(page.text().contains("← Newest"), pages.len() > 1, "{url}");
            next = link_with_class(&page.body, "next");
            assert!(pages.len() <= 5, "the pages do not end: {pages:?}");
        }
        pages
    };

    let all = pages(&mut d.client, &format!("{BASE}/operations"));
    let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        all.concat(),
        newest_first,
        "no overlap, no gap, newest first"
    );

    let page = d
        .client
        .get(&format!("{BASE}/operations?after={}", newest_first[49]));
    assert_eq!(listed_ids(&page.body), newest_first[50..100]);
    assert!(attributes(&page.body, "href").contains(&format!("{BASE}/operations?")));

    // The filters follow the pages.
    let even_pages = pages(
        &mut d.client,
        &format!("{BASE}/operations?operation_type=even"),
    );
    let sizes: Vec<usize> = even_pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 10]);
    let mut expected = evens;
    expected.reverse();
    assert_eq!(even_pages.concat(), expected);
    let first = d
        .client
        .get(&format!("{BASE}/operations?operation_type=even"));
    let older = link_with_class(&first.body, "next").unwrap();
    assert_eq!(
        older,
        format!(
            "{BASE}/operations?operation_type=even&after={}",
            expected[49]
        )
    );
    let second = d.client.get(&older);
    assert!(attributes(&second.body, "href")
        .contains(&format!("{BASE}/operations?operation_type=even")));
}

fn operations_list_explains_a_bad_filter<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    pending::<B>(&mut d.conn, "mail", "default");
    let cases: &[(Query, &str)] = &[
        (&[("status", "bogus")], "`bogus` is not a status"),
        (&[("result", "maybe")], "`maybe` is not a result"),
        (
            &[("created_after", "yesterday")],
            "created after: `yesterday` is not a time",
        ),
        (
            &[("created_before", "2026-13-45")],
            "created before: `2026-13-45` is not a time",
        ),
        (
            &[("context_type", "game")],
            "a context object needs both its type and its id",
        ),
        (
            &[("context_id", "7")],
            "a context object needs both its type and its id",
        ),
        (&[("after", "x")], "after: `x` is not an operation id"),
        (&[("id", "abc")], "`abc` is not an operation id"),
    ];
    for (query, message) in cases {
        let page = d.client.get(&format!("{BASE}/operations?{}", form(query)));
        page.expect(400);
        assert!(page.is_html(), "{query:?}");
        let text = page.text();
        assert!(text.contains("400 Bad Request"), "{text}");
        assert!(text.contains(message), "{query:?}: {text}");
        assert!(
            attributes(&page.body, "href").contains(&BASE.to_owned()),
            "the error page is in the layout"
        );
    }
}

fn operation_page_shows_every_field_and_the_input_and_output<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let input = json!({"file": "users.csv", "rows": [1, 2, 3], "options": {"dry_run": false}});
    let output = json!({"imported": 120, "skipped": ["bob"]});
    let mut op = BatchOperation::create_asynchronous("import-users")
        .queue("mail")
        .priority(3)
        .max_attempts(3)
        .context_object(&context("game", "7"))
        .started_by("ann")
        .input(&input)
        .insert(&mut d.conn)
        .unwrap();
    op.mark_as_running(&mut d.conn).unwrap();
    op.finish_with_output(&mut d.conn, &output).unwrap();
    let op = d.find(op.id());
    let id = op.id();

    let page = d.client.get(&format!("{BASE}/operations/{id}"));
    page.expect(200);
    assert!(page
        .body
        .contains(&format!("<h1>Operation {id} · import-users</h1>")));
    let fields = fields(&page.body);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("(missing)");
    assert_eq!(field("Id"), id.to_string());
    assert_eq!(field("Type"), "import-users");
    assert_eq!(field("Queue"), "mail");
    assert_eq!(field("Priority"), "3");
    assert_eq!(field("Attempts"), format!("{} of 3", op.attempts()));
    assert_eq!(field("Context object"), "game 7");
    assert_eq!(field("Started by"), "ann");
    assert_eq!(field("Runs after"), "—");
    assert!(field("Created").ends_with(" UTC"), "{fields:?}");
    assert!(field("Started running").ends_with(" UTC"), "{fields:?}");
    assert!(field("Finished").ends_with(" UTC"), "{fields:?}");
    assert_eq!(field("Cancel requested"), "no");
    let links = attributes(&page.body, "href");
    assert!(links.contains(&format!("{BASE}/operations?queue=mail")));
    assert!(links.contains(&format!("{BASE}/operations?context_type=game&context_id=7")));
    let summary = between(&page.body, "<section id=\"summary\"", "</section>");
    assert_eq!(element_text(summary, "status"), "finished");
    assert_eq!(element_text(summary, "result"), "successful");
    // Succeeded: nothing to retry or cancel.
    assert!(!page.body.contains("method=\"post\""), "{}", page.body);

    let input_section = between(&page.body, "<section id=\"input\"", "</section>");
    assert_eq!(
        pre_json(input_section),
        serde_json::to_string_pretty(&input).unwrap()
    );
    let output_section = between(&page.body, "<section id=\"output\"", "</section>");
    assert_eq!(
        pre_json(output_section),
        serde_json::to_string_pretty(&output).unwrap()
    );
    assert!(!output_section.contains("Earlier attempts"));
    assert!(!output_section.contains("action-results"));

    // A pending operation can be cancelled, a failed one retried.
    let waiting = pending::<B>(&mut d.conn, "mail", "default");
    let page = d.client.get(&format!("{BASE}/operations/{}", waiting.id()));
    let fields = super::support::fields(&page.body);
    assert_eq!(fields["Started running"], "—");
    assert_eq!(fields["Context object"], "—");
    assert_eq!(element_text(&page.body, "status"), "unprocessed");
    assert_eq!(
        attributes(&page.body, "action")
            .into_iter()
            .filter(|action| action.contains("/operations/"))
            .collect::<Vec<_>>(),
        [format!("{BASE}/operations/{}/cancel", waiting.id())]
    );
    let failure = failed::<B>(&mut d.conn, "mail", "default", &json!("smtp down"));
    let page = d.client.get(&format!("{BASE}/operations/{}", failure.id()));
    assert_eq!(
        attributes(&page.body, "action")
            .into_iter()
            .filter(|action| action.contains("/operations/"))
            .collect::<Vec<_>>(),
        [format!("{BASE}/operations/{}/retry", failure.id())]
    );
    assert_eq!(
        pre_json(between(&page.body, "<section id=\"output\"", "</section>")),
        "\"smtp down\""
    );

    // Progress without a total, set as an action's `progress(5, None)` stores it.
    let busy = running::<B>(&mut d.conn, "mail", "default");
    d.conn
        .batch_execute(&format!(
            "UPDATE batchframework_batchoperation SET progress_done = 5 WHERE id = {}",
            busy.id()
        ))
        .unwrap();
    let page = d.client.get(&format!("{BASE}/operations/{}", busy.id()));
    assert!(page.text().contains("5 done"), "{}", page.body);
}

fn operation_page_shows_action_results_progress_and_earlier_attempts<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let registry: Arc<Registry<B::Connection>> = Arc::new(
        Registry::builder()
            .group(
                ActionGroup::new("import")
                    .asynchronous()
                    .action(action_fn("fetch", |ctx| {
                        ctx.progress(3, Some(10))?;
                        Ok(json!({"rows": 3}))
                    }))
                    .action(action_fn("parse", |_| {
                        Err(ActionError::with_data(
                            json!("bad row 7"),
                            "parse error at line 7",
                        ))
                    })),
            )
            .build()
            .unwrap(),
    );
    let id = registry
        .run(
            &mut d.conn,
            "import",
            RunArgs::new().input(&json!({"file": "a.csv"})),
        )
        .unwrap()
        .operation
        .id();
    let worker = Worker::new(Arc::clone(&registry), B::pool(&d.db, 2));
    assert_eq!(worker.run_until_idle(1).unwrap().failed, 1);

    let page = d.client.get(&format!("{BASE}/operations/{id}"));
    page.expect(200);
    // Finished: the result says how it went; the last progress report is not shown.
    let summary = between(&page.body, "<section id=\"summary\"", "</section>");
    assert!(!summary.contains("<progress"), "{summary}");

    let table = between(&page.body, "<table class=\"action-results\">", "</table>");
    let rows: Vec<Vec<String>> = table.split("<tr").skip(2).map(cells).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(rows[0][..3], ["fetch", "no", ""]);
    assert_eq!(
        serde_json::from_str::<Value>(&rows[0][3]).unwrap(),
        json!({"rows": 3})
    );
    assert_eq!(rows[1][..2], ["parse", "yes"]);
    assert_eq!(rows[1][2], "bad row 7 Traceback parse error at line 7");
    assert!(table.contains("<tr class=\"failed\">"));
    assert!(!page.body.contains("Earlier attempts"));

    let overview = d.client.get(BASE);
    let failures = between(&overview.body, "<section id=\"failures\"", "</section>");
    assert!(
        super::support::text(failures).contains("parse: bad row 7"),
        "{failures}"
    );

    // Retried from the dashboard and failed again: the first attempt is listed as earlier.
    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/{id}/retry"), &[]);
    reply.expect(303);
    assert_eq!(worker.run_until_idle(1).unwrap().failed, 1);
    let op = d.find(id);
    assert_eq!(
        (op.status(), op.result()),
        (Status::Finished, OperationResult::Failed)
    );
    let page = d.client.get(&format!("{BASE}/operations/{id}"));
    page.expect(200);
    let output = between(&page.body, "<section id=\"output\"", "</section>");
    let attempts = between(output, "<ol class=\"attempts\">", "</ol>");
    assert_eq!(attempts.matches("<li>").count(), 1, "{attempts}");
    assert!(
        super::support::text(attempts).starts_with("parse: bad row 7"),
        "{attempts}"
    );
    let stored: Value = op.output_data().unwrap().unwrap();
    let earlier = &stored["previous_attempts"][0];
    assert!(unescape(attempts).contains(&serde_json::to_string_pretty(earlier).unwrap()));
    // The output shown is this attempt's, without the list.
    let mut latest = stored.clone();
    latest.as_object_mut().unwrap().remove("previous_attempts");
    let shown = between(output, "<summary><h2>Output</h2></summary>", "</pre>");
    assert_eq!(
        pre_json(shown),
        serde_json::to_string_pretty(&latest).unwrap()
    );
    assert!(output.contains("<table class=\"action-results\">"));
    // Running, it shows as a bar.
    d.conn
        .batch_execute(&format!(
            "UPDATE batchframework_batchoperation SET status = 'running', result = 'not-available', \
             finished_datetime = NULL, locked_by = 'w', heartbeat_datetime = started_running_datetime \
             WHERE id = {id}"
        ))
        .unwrap();
    let running = d.client.get(&format!("{BASE}/operations/{id}"));
    let summary = between(&running.body, "<section id=\"summary\"", "</section>");
    assert!(
        summary.contains("<progress value=\"3\" max=\"10\""),
        "{summary}"
    );
    assert!(super::support::text(summary).contains("3/10"));
}

/// A batch's parent (here a workflow's) shows its children's progress; a child links to its
/// parent, and a workflow step still waiting for its dependencies says so.
fn operation_page_shows_a_batchs_children_and_a_steps_batch<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let registry: Registry<B::Connection> = Registry::builder()
        .group(
            ActionGroup::new("step")
                .asynchronous()
                .action(action_fn("run", |_| Ok(Value::Null))),
        )
        .build()
        .unwrap();
    let workflow = registry
        .workflow("nightly")
        .step(Step::new("a", "step", RunArgs::new()))
        .step(Step::new("b", "step", RunArgs::new()).after(["a"]))
        .step(Step::new("c", "step", RunArgs::new()).after(["b"]))
        .enqueue(&mut d.conn)
        .unwrap();
    let mut a = d.find(workflow.step_id("a").unwrap());
    a.mark_as_running(&mut d.conn).unwrap();
    a.finish(&mut d.conn).unwrap();

    let parent = d
        .client
        .get(&format!("{BASE}/operations/{}", workflow.id()));
    parent.expect(200);
    let summary = between(&parent.body, "<section id=\"summary\"", "</section>");
    let children = between(summary, "<p id=\"children\">", "</p>");
    assert!(
        children.contains("<progress value=\"1\" max=\"3\""),
        "{children}"
    );
    assert!(
        super::support::text(children).contains("1 of 3 finished · 1 succeeded · 0 failed"),
        "{children}"
    );

    let c = workflow.step_id("c").unwrap();
    let step = d.client.get(&format!("{BASE}/operations/{c}"));
    step.expect(200);
    let summary = between(&step.body, "<section id=\"summary\"", "</section>");
    assert!(
        summary.contains("waiting for its dependencies"),
        "{summary}"
    );
    assert!(!summary.contains(">delayed<"), "{summary}");
    assert!(!summary.contains("9999"), "{summary}");
    assert!(
        summary.contains("the steps it depends on have finished"),
        "{summary}"
    );
    assert!(!summary.contains("id=\"children\""), "{summary}");
    assert!(
        summary.contains(&format!("href=\"{BASE}/operations/{}\"", workflow.id())),
        "{summary}"
    );
    // Released, it waits no longer.
    let b = d.client.get(&format!(
        "{BASE}/operations/{}",
        workflow.step_id("b").unwrap()
    ));
    assert!(!b.body.contains("waiting for its dependencies"));
}

fn prune_page_counts_only_old_finished_operations<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let conn = &mut d.conn;
    let two_hours_ago = Utc::now() - Duration::hours(2);
    let old: Vec<i64> = vec![
        succeeded::<B>(conn, "import", "default").id(),
        succeeded::<B>(conn, "export", "default").id(),
        failed::<B>(conn, "import", "mail", &json!("no")).id(),
    ];
    for id in &old {
        age::<B>(conn, *id, two_hours_ago);
    }
    succeeded::<B>(conn, "import", "default"); // recent
    for id in [
        pending::<B>(conn, "import", "default").id(),
        running::<B>(conn, "import", "default").id(),
    ] {
        age::<B>(conn, id, two_hours_ago - Duration::hours(1));
    }

    let page = d.client.get(&format!("{BASE}/prune"));
    page.expect(200);
    assert!(page.body.contains("<form id=\"prune-query\""));
    assert!(
        !page.body.contains("prune-confirm"),
        "no age given: nothing counted"
    );

    let cases: &[(Query, i64)] = &[
        (&[("older_than", "1h")], 3),
        (&[("older_than", "90m")], 3),
        (&[("older_than", "3h")], 0),
        (&[("older_than", "1h"), ("result", "failed")], 1),
        (&[("older_than", "1h"), ("result", "successful")], 2),
        (&[("older_than", "1h"), ("operation_type", "import")], 2),
        (
            &[
                ("older_than", "1h"),
                ("operation_type", "import"),
                ("result", "successful"),
            ],
            1,
        ),
    ];
    for (query, count) in cases {
        let page = d.client.get(&format!("{BASE}/prune?{}", form(query)));
        page.expect(200);
        let confirm = between(&page.body, "<section id=\"prune-confirm\">", "</section>");
        let text = super::support::text(confirm);
        assert!(
            text.starts_with(&format!("{count} finished operation")),
            "{query:?}: {text}"
        );
        if *count > 0 {
            let form = between(confirm, "<form id=\"prune\"", "</form>");
            assert!(form.contains("method=\"post\""));
            assert_eq!(
                attributes(form, "action"),
                [format!("{BASE}/prune")],
                "{form}"
            );
            assert!(form.contains(&format!("name=\"older_than\" value=\"{}\"", query[0].1)));
            assert!(form.contains("name=\"csrf\""));
        } else {
            assert!(!confirm.contains("<form"), "nothing to delete: no button");
        }
    }

    for bad in ["1x", "h", "30", "99999999999d"] {
        let page = d
            .client
            .get(&format!("{BASE}/prune?{}", form(&[("older_than", bad)])));
        page.expect(400);
        assert!(
            page.text().contains(&format!("`{bad}` is not an age")),
            "{}",
            page.text()
        );
    }
    let page = d
        .client
        .get(&format!("{BASE}/prune?older_than=1h&result=maybe"));
    page.expect(400);
    assert!(page.text().contains("`maybe` is not a result"));
}

fn metrics_report_the_queues_in_prometheus_format<B: TestBackend>() {
    let db = B::create_database();
    let mut conn = B::connect(&db);
    batchframework_diesel::run_migrations(&mut conn).unwrap();
    let options = Options::default().metrics(|| "app_requests_total 7\n".to_owned());
    let mut client = Client::new(app::<B>(&db, BASE, options));
    for _ in 0..3 {
        pending::<B>(&mut conn, "mail", "alpha");
    }
    BatchOperation::create_asynchronous("mail")
        .queue("alpha")
        .run_after(Utc::now() + Duration::hours(1))
        .insert(&mut conn)
        .unwrap();
    running::<B>(&mut conn, "mail", "alpha");
    running::<B>(&mut conn, "mail", "alpha");
    succeeded::<B>(&mut conn, "mail", "alpha");
    failed::<B>(&mut conn, "mail", "alpha", &json!("no"));
    failed::<B>(&mut conn, "mail", "alpha", &json!("no"));
    let odd = "say \"hi\"\\now";
    pending::<B>(&mut conn, "mail", odd);
    admin::pause_queue(&mut conn, odd).unwrap();

    let reply = client.get(&format!("{BASE}/metrics"));
    reply.expect(200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(reply.set_cookies().is_empty(), "a scrape gets no cookie");
    let lines: Vec<&str> = reply.body.lines().collect();
    for expected in [
        "# TYPE batchframework_queue_depth gauge",
        "batchframework_queue_depth{queue=\"alpha\",state=\"due\"} 3",
        "batchframework_queue_depth{queue=\"alpha\",state=\"delayed\"} 1",
        "batchframework_queue_depth{queue=\"alpha\",state=\"running\"} 2",
        "batchframework_queue_paused{queue=\"alpha\"} 0",
        "batchframework_queue_finished_last_hour{queue=\"alpha\",result=\"successful\"} 1",
        "batchframework_queue_finished_last_hour{queue=\"alpha\",result=\"failed\"} 2",
        "batchframework_queue_depth{queue=\"say \\\"hi\\\"\\\\now\",state=\"due\"} 1",
        "batchframework_queue_depth{queue=\"say \\\"hi\\\"\\\\now\",state=\"running\"} 0",
        "batchframework_queue_paused{queue=\"say \\\"hi\\\"\\\\now\"} 1",
        "app_requests_total 7",
    ] {
        assert!(
            lines.contains(&expected),
            "`{expected}` missing:\n{}",
            reply.body
        );
    }
    let lag = lines
        .iter()
        .find_map(|line| line.strip_prefix("batchframework_queue_lag_seconds{queue=\"alpha\"} "))
        .expect("alpha's lag");
    assert!(lag.parse::<f64>().unwrap() >= 0.0);
    // Every sample line is `name{labels} number` or `name number`.
    for line in lines.iter().filter(|line| !line.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    drop(client);
}

fn healthz_answers_ok_only_once_migrated<B: TestBackend>() {
    let db = B::create_database();
    let mut client = Client::new(app::<B>(&db, BASE, Options::default()));
    let reply = client.get(&format!("{BASE}/healthz"));
    reply.expect(503);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(reply.body.contains("not migrated"), "{}", reply.body);
    assert!(reply.body.contains("pending"), "{}", reply.body);
    assert!(reply.set_cookies().is_empty());
    // A page says what is wrong too, as a page.
    let page = client.get(BASE);
    page.expect(503);
    assert!(page.is_html());
    assert!(
        page.text().to_lowercase().contains("migrat"),
        "{}",
        page.text()
    );

    let mut conn = B::connect(&db);
    batchframework_diesel::run_migrations(&mut conn).unwrap();
    let reply = client.get(&format!("{BASE}/healthz"));
    reply.expect(200);
    assert_eq!(reply.body, "ok\n");
    client.get(BASE).expect(200);
    drop(client);
}

fn assets_are_served_with_their_types<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    for (file, kind, content) in [
        (
            "dashboard.css",
            "text/css; charset=utf-8",
            include_str!("../../assets/dashboard.css"),
        ),
        (
            "dashboard.js",
            "text/javascript; charset=utf-8",
            include_str!("../../assets/dashboard.js"),
        ),
    ] {
        let reply = d.client.get(&format!("{BASE}/assets/{file}"));
        reply.expect(200);
        assert_eq!(reply.header("content-type"), Some(kind));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(reply.body, content);
        assert!(reply.set_cookies().is_empty());
    }
    let page = d.client.get(BASE);
    let links = attributes(&page.body, "href");
    assert!(links.contains(&format!("{BASE}/assets/dashboard.css")));
    assert_eq!(
        attributes(&page.body, "src"),
        [format!("{BASE}/assets/dashboard.js")]
    );
    let reply = d.client.get(&format!("{BASE}/assets/other.js"));
    reply.expect(404);
    assert!(reply.is_html());
    assert!(reply.text().contains("there is no file `other.js` here"));
}

fn unknown_pages_and_operations_answer_404_and_malformed_ids_400<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let op = pending::<B>(&mut d.conn, "mail", "default");
    for path in ["/nope", "/operations/1/nope", "/queues/default"] {
        let page = d.client.get(&format!("{BASE}{path}"));
        page.expect(404);
        assert!(page.is_html(), "{path}");
        let text = page.text();
        assert!(text.contains("404 Not Found"), "{path}: {text}");
        assert!(
            text.contains("there is no such page here"),
            "{path}: {text}"
        );
        // In the layout: the navigation and a way back.
        let links = attributes(&page.body, "href");
        assert!(links.contains(&BASE.to_owned()), "{links:?}");
        assert!(links.contains(&format!("{BASE}/operations")), "{links:?}");
    }
    for id in [op.id() + 1000, -1] {
        let page = d.client.get(&format!("{BASE}/operations/{id}"));
        page.expect(404);
        assert!(page.is_html());
        assert!(page.text().contains("404 Not Found"));
    }
    for id in ["abc", "1.5", "99999999999999999999"] {
        let page = d.client.get(&format!("{BASE}/operations/{id}"));
        page.expect(400);
        assert!(page.is_html());
        assert!(
            page.text()
                .contains(&format!("`{id}` is not an operation id")),
            "{}",
            page.text()
        );
    }
    // An action on a malformed id is refused the same way, and changes nothing.
    let before = d.snapshot();
    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/abc/cancel"), &[]);
    reply.expect(400);
    assert_eq!(d.snapshot(), before);
    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/{}/cancel", op.id() + 1000), &[]);
    reply.expect(404);
    assert_eq!(d.snapshot(), before);
}

/// What axum's extractors refuse before a handler runs (a query string or form they cannot
/// read, a body that is not a form, a method a route does not take) is an error like any other:
/// a page in the layout saying what is wrong, as the crate docs promise ("Errors render a page
/// saying what went wrong").
fn malformed_requests_answer_an_error_page<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    pending::<B>(&mut d.conn, "mail", "default");
    let before = d.snapshot();
    let csrf = d.client.csrf();
    let replies = [
        (
            "a repeated filter",
            d.client
                .get(&format!("{BASE}/operations?status=running&status=finished")),
            400,
        ),
        (
            "a repeated prune field",
            d.client
                .get(&format!("{BASE}/prune?older_than=1h&older_than=2h")),
            400,
        ),
        (
            "a repeated form field",
            d.client.post(
                &format!("{BASE}/prune"),
                &[("csrf", &csrf), ("older_than", "1h"), ("older_than", "2h")],
            ),
            422,
        ),
        (
            "a body that is not a form",
            d.client.send(
                axum::http::Method::POST,
                &format!("{BASE}/queues/default/pause"),
                &[],
                axum::body::Body::from(format!("csrf={csrf}")),
            ),
            415,
        ),
        (
            "a method the route does not take",
            d.client.send(
                axum::http::Method::DELETE,
                &format!("{BASE}/prune"),
                &[],
                axum::body::Body::empty(),
            ),
            405,
        ),
    ];
    for (what, reply, status) in &replies {
        assert_eq!(reply.status.as_u16(), *status, "{what}: {}", reply.body);
        assert!(
            reply.is_html(),
            "{what}: a {} answered {:?} `{}`, not a page",
            reply.status,
            reply.header("content-type"),
            reply.body
        );
        let text = reply.text();
        assert!(text.contains(&status.to_string()), "{what}: {text}");
        assert!(
            attributes(&reply.body, "href").contains(&BASE.to_owned()),
            "{what}: in the layout"
        );
    }
    assert!(
        replies[0].1.text().contains("duplicate field `status`"),
        "it says what is wrong: {}",
        replies[0].1.text()
    );
    assert_eq!(d.snapshot(), before);
}
