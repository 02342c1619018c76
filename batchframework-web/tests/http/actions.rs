//! Every action through its form: the answer (a redirect back with a message shown once, or an
//! error page), and the database changed exactly as the admin API says, or not at all when the
//! action does not apply.

use batchframework_diesel::admin;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use batchframework_tests::{backend_tests, TestBackend};
use batchframework_web::Options;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::support::{
    age, attributes, between, csrf_field, element_text, failed, pending, queue_row, running,
    succeeded, text, Dashboard, BASE, FLASH_COOKIE,
};

backend_tests!(
    retry_queues_a_failure_again_and_says_so_once,
    retry_refuses_what_has_not_failed,
    cancel_finishes_pending_work_and_asks_running_work_to_stop,
    pause_and_resume_a_queue,
    prune_deletes_the_old_finished_operations,
);

fn retry_queues_a_failure_again_and_says_so_once<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let op = failed::<B>(&mut d.conn, "import", "mail", &json!({"error": "first"}));
    let other = failed::<B>(&mut d.conn, "import", "mail", &json!({"error": "other"}));
    let page = d.client.get(&format!("{BASE}/operations/{}", op.id()));
    // The button's form, as a browser submits it.
    let action = format!("{BASE}/operations/{}/retry", op.id());
    assert!(attributes(&page.body, "action").contains(&action));
    let csrf = csrf_field(between(&page.body, "<form class=\"retry\"", "</form>"));
    let reply = d.client.post(&action, &[("csrf", &csrf)]);
    reply.expect(303);
    assert_eq!(reply.location(), format!("{BASE}/operations/{}", op.id()));
    let flash = reply
        .set_cookie(FLASH_COOKIE)
        .expect("a message for the next page");
    assert!(flash.contains(&format!("; Path={BASE};")), "{flash}");
    assert!(flash.contains("HttpOnly"), "{flash}");

    let stored = d.find(op.id());
    assert_eq!(
        (stored.status(), stored.result(), stored.attempts()),
        (Status::Unprocessed, OperationResult::NotAvailable, 0)
    );
    assert_eq!(stored.finished_datetime(), None);
    assert_eq!(
        stored.output_data::<Value>().unwrap().unwrap(),
        json!({"previous_attempts": [{"error": "first"}]})
    );
    assert_eq!(d.find(other.id()), other, "only that operation");

    let page = d.client.get(reply.location());
    page.expect(200);
    assert_eq!(
        page.flash().as_deref(),
        Some(format!("Operation {} is queued again (queue mail).", op.id()).as_str())
    );
    assert_eq!(element_text(&page.body, "status"), "unprocessed");
    assert!(
        d.client.cookie(FLASH_COOKIE).is_none(),
        "the message is cleared"
    );
    let again = d.client.get(reply.location());
    assert_eq!(again.flash(), None, "shown once");
    let overview = d.client.get(BASE);
    assert_eq!(overview.flash(), None);

    // An error that is not an object (a string output) is kept as an earlier attempt too.
    let text_failure = failed::<B>(&mut d.conn, "import", "mail", &json!("smtp down"));
    let retry_text = format!("{BASE}/operations/{}/retry", text_failure.id());
    d.client.post_form(&retry_text, &[]).expect(303);
    assert_eq!(
        d.find(text_failure.id())
            .output_data::<Value>()
            .unwrap()
            .unwrap(),
        json!({"previous_attempts": ["smtp down"]})
    );
    let page = d
        .client
        .get(&format!("{BASE}/operations/{}", text_failure.id()));
    let attempts = between(&page.body, "<ol class=\"attempts\">", "</ol>");
    assert_eq!(attempts.matches("<li>").count(), 1, "{attempts}");
    assert!(text(attempts).starts_with("smtp down"), "{attempts}");

    // Queued again, it is not retried twice.
    let before = d.snapshot();
    let reply = d.client.post_form(&action, &[]);
    reply.expect(409);
    assert!(reply.is_html());
    assert_eq!(d.snapshot(), before);
}

fn retry_refuses_what_has_not_failed<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let success = succeeded::<B>(&mut d.conn, "import", "default");
    let waiting = pending::<B>(&mut d.conn, "import", "default");
    let busy = running::<B>(&mut d.conn, "import", "default");
    let before = d.snapshot();
    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/{}/retry", success.id()), &[]);
    reply.expect(409);
    assert!(reply.is_html());
    let text = reply.text();
    assert!(text.contains("409 Conflict"), "{text}");
    assert!(text.contains("only failed"), "{text}");
    assert!(reply.set_cookie(FLASH_COOKIE).is_none());
    for op in [&waiting, &busy] {
        let reply = d
            .client
            .post_form(&format!("{BASE}/operations/{}/retry", op.id()), &[]);
        reply.expect(409);
    }
    let reply = d.client.post_form(
        &format!("{BASE}/operations/{}/retry", busy.id() + 1000),
        &[],
    );
    reply.expect(404);
    assert_eq!(d.snapshot(), before);
}

fn cancel_finishes_pending_work_and_asks_running_work_to_stop<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let waiting = pending::<B>(&mut d.conn, "mail", "default");
    let busy = running::<B>(&mut d.conn, "mail", "default");
    let bystander = pending::<B>(&mut d.conn, "mail", "default");

    let page = d.client.get(&format!("{BASE}/operations/{}", waiting.id()));
    let csrf = csrf_field(between(&page.body, "<form class=\"cancel\"", "</form>"));
    let reply = d.client.post(
        &format!("{BASE}/operations/{}/cancel", waiting.id()),
        &[("csrf", &csrf)],
    );
    reply.expect(303);
    assert_eq!(
        reply.location(),
        format!("{BASE}/operations/{}", waiting.id())
    );
    let stored = d.find(waiting.id());
    assert_eq!(
        (stored.status(), stored.result()),
        (Status::Finished, OperationResult::Failed)
    );
    assert_eq!(
        stored.output_data::<Value>().unwrap().unwrap(),
        json!({"cancelled": true, "by": "dashboard"})
    );
    let page = d.client.get(reply.location());
    assert_eq!(
        page.flash().as_deref(),
        Some(format!("Operation {} was cancelled before it ran.", waiting.id()).as_str())
    );
    assert_eq!(element_text(&page.body, "status"), "finished");
    assert_eq!(element_text(&page.body, "result"), "failed");
    assert!(!page.body.contains("form class=\"cancel\""));

    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/{}/cancel", busy.id()), &[]);
    reply.expect(303);
    let stored = d.find(busy.id());
    assert_eq!(
        (stored.status(), stored.cancel_requested()),
        (Status::Running, true)
    );
    assert_eq!(stored.finished_datetime(), None);
    let page = d.client.get(reply.location());
    assert!(page.flash().unwrap().contains("asked to stop"));
    assert!(page.text().contains("cancelling"), "{}", page.body);
    assert_eq!(
        super::support::fields(&page.body)["Cancel requested"],
        "yes"
    );
    assert!(
        !page.body.contains("form class=\"cancel\""),
        "asked once, the button is gone"
    );

    assert_eq!(d.find(bystander.id()), bystander);

    // Finished: nothing to cancel.
    let before = d.snapshot();
    let reply = d
        .client
        .post_form(&format!("{BASE}/operations/{}/cancel", waiting.id()), &[]);
    reply.expect(409);
    assert!(reply.is_html());
    assert_eq!(d.snapshot(), before);
}

fn pause_and_resume_a_queue<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    pending::<B>(&mut d.conn, "mail", "mail");
    pending::<B>(&mut d.conn, "mail", "other");

    let page = d.client.get(BASE);
    let row = between(&page.body, "<tr data-queue=\"mail\"", "</tr>");
    let action = format!("{BASE}/queues/mail/pause");
    assert_eq!(attributes(row, "action"), std::slice::from_ref(&action));
    let reply = d.client.post(&action, &[("csrf", &csrf_field(row))]);
    reply.expect(303);
    assert_eq!(reply.location(), BASE);
    assert_eq!(admin::paused_queues(&mut d.conn).unwrap(), ["mail"]);
    let page = d.client.get(BASE);
    assert_eq!(
        page.flash().as_deref(),
        Some("Queue mail is paused: workers claim nothing from it until it is resumed.")
    );
    let row = queue_row(&page.body, "mail");
    assert_eq!((row[8].as_str(), row[9].as_str()), ("paused", "Resume"));
    assert_eq!(queue_row(&page.body, "other")[9], "Pause");

    let row = between(&page.body, "<tr data-queue=\"mail\"", "</tr>");
    let action = format!("{BASE}/queues/mail/resume");
    assert_eq!(attributes(row, "action"), std::slice::from_ref(&action));
    let reply = d.client.post(&action, &[("csrf", &csrf_field(row))]);
    reply.expect(303);
    assert!(admin::paused_queues(&mut d.conn).unwrap().is_empty());
    let page = d.client.get(BASE);
    assert_eq!(page.flash().as_deref(), Some("Queue mail is resumed."));
    assert_eq!(queue_row(&page.body, "mail")[9], "Pause");

    // A queue with nothing in it yet, whose name needs encoding in a path.
    let name = "night jobs/eu 100%";
    let reply = d.client.post_form(
        &format!("{BASE}/queues/night%20jobs%2Feu%20100%25/pause"),
        &[],
    );
    reply.expect(303);
    assert_eq!(admin::paused_queues(&mut d.conn).unwrap(), [name]);
    let page = d.client.get(BASE);
    let row = between(&page.body, &format!("<tr data-queue=\"{name}\""), "</tr>");
    // The overview's own button points at the same queue.
    let resume = attributes(row, "action").pop().unwrap();
    let reply = d.client.post_form(&resume, &[]);
    reply.expect(303);
    assert!(admin::paused_queues(&mut d.conn).unwrap().is_empty());
    // Resuming what is not paused changes nothing.
    let before = d.snapshot();
    d.client
        .post_form(&format!("{BASE}/queues/mail/resume"), &[])
        .expect(303);
    assert_eq!(d.snapshot(), before);
    // A name longer than the library takes is refused as a bad request.
    let long = "q".repeat(300);
    d.client
        .post_form(&format!("{BASE}/queues/{long}/pause"), &[])
        .expect(400);
    assert_eq!(d.snapshot(), before);
}

fn prune_deletes_the_old_finished_operations<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let conn = &mut d.conn;
    let long_ago = Utc::now() - Duration::hours(2);
    let old_success = succeeded::<B>(conn, "import", "default").id();
    let old_failure = failed::<B>(conn, "import", "default", &json!("no")).id();
    let old_export = succeeded::<B>(conn, "export", "default").id();
    for id in [old_success, old_failure, old_export] {
        age::<B>(conn, id, long_ago);
    }
    let recent = succeeded::<B>(conn, "import", "default").id();
    let old_pending = pending::<B>(conn, "import", "default").id();
    let old_running = running::<B>(conn, "import", "default").id();
    for id in [old_pending, old_running] {
        age::<B>(conn, id, long_ago);
    }
    let ids = |d: &mut Dashboard<B>| -> Vec<i64> {
        let mut ids: Vec<i64> = d.snapshot().0.iter().map(BatchOperation::id).collect();
        ids.sort_unstable();
        ids
    };

    // Only the failures first: the confirmation's own form.
    let page = d
        .client
        .get(&format!("{BASE}/prune?older_than=1h&result=failed"));
    let form = between(&page.body, "<form id=\"prune\"", "</form>");
    let fields: Vec<(String, String)> = form
        .split("<input ")
        .skip(1)
        .map(|input| {
            let name = attributes(&format!(" {input}"), "name").remove(0);
            let value = attributes(&format!(" {input}"), "value").remove(0);
            (name, value)
        })
        .collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let reply = d.client.post(&format!("{BASE}/prune"), &fields);
    reply.expect(303);
    assert_eq!(reply.location(), BASE);
    let mut left = vec![old_success, old_export, recent, old_pending, old_running];
    left.sort_unstable();
    assert_eq!(ids(&mut d), left);
    let page = d.client.get(BASE);
    assert_eq!(
        page.flash().as_deref(),
        Some("Deleted 1 finished operation.")
    );

    let reply = d
        .client
        .post_form(&format!("{BASE}/prune"), &[("older_than", "1h")]);
    reply.expect(303);
    let mut left = vec![recent, old_pending, old_running];
    left.sort_unstable();
    assert_eq!(ids(&mut d), left);
    let page = d.client.get(BASE);
    assert_eq!(
        page.flash().as_deref(),
        Some("Deleted 2 finished operations.")
    );

    // Nothing old is left to delete; an age is required and must be one.
    let before = d.snapshot();
    d.client
        .post_form(&format!("{BASE}/prune"), &[("older_than", "1h")])
        .expect(303);
    assert_eq!(
        d.client.get(BASE).flash().as_deref(),
        Some("Deleted 0 finished operations.")
    );
    for fields in [&[][..], &[("older_than", "")], &[("older_than", "soon")]] {
        let reply = d.client.post_form(&format!("{BASE}/prune"), fields);
        reply.expect(400);
        assert!(reply.is_html());
    }
    assert_eq!(d.snapshot(), before);
}
