//! What every answer carries whatever its status: the security headers (a
//! `Content-Security-Policy` that allows no inline script or style, `nosniff`, no framing),
//! pages that need nothing the policy forbids (no inline script, style or event handler),
//! error pages without a panic or backtrace, and cookies scoped to where the router is mounted,
//! nested or at the root.

use batchframework_diesel::admin;
use batchframework_tests::{backend_tests, TestBackend};
use batchframework_web::Options;
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::support::{
    age, app, attributes, csrf_field, failed, pending, running, succeeded, Client, Dashboard,
    Reply, BASE, CSRF_COOKIE, FLASH_COOKIE, TOKEN_COOKIE,
};

backend_tests!(
    every_answer_carries_the_security_headers,
    cookies_are_scoped_to_the_mount_path,
    mounted_at_the_root_links_and_cookies_use_the_root,
);

/// The attribute names of each tag of `html`, quoted values skipped.
fn tags(html: &str) -> Vec<(String, Vec<String>)> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!' || *c == '/')
            .collect();
        rest = &rest[name.len()..];
        let mut attributes = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
                break;
            }
            let end = rest
                .find(|c: char| c == '=' || c == '>' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            attributes.push(rest[..end].to_ascii_lowercase());
            rest = &rest[end..];
            if let Some(value) = rest.strip_prefix("=\"") {
                let close = value.find('"').expect("a closed attribute value");
                rest = &value[close + 1..];
            }
        }
        tags.push((name.to_ascii_lowercase(), attributes));
    }
    tags
}

/// The headers every answer carries.
#[track_caller]
fn assert_headers(reply: &Reply, what: &str) {
    let policy = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(policy.contains("script-src 'self'"), "{what}: {policy}");
    assert!(policy.contains("style-src 'self'"), "{what}: {policy}");
    assert!(
        policy.contains("frame-ancestors 'none'"),
        "{what}: {policy}"
    );
    assert!(!policy.contains("unsafe-inline"), "{what}: {policy}");
    assert!(!policy.contains("unsafe-eval"), "{what}: {policy}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
}

/// An HTML answer: the headers, and a page the policy lets work as it is.
#[track_caller]
fn assert_safe_page(reply: &Reply, what: &str) {
    assert!(
        reply.is_html(),
        "{what}: {:?}",
        reply.header("content-type")
    );
    assert_headers(reply, what);
    if !what.contains("/assets/") {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    }
    let body = &reply.body;
    assert!(
        body.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{what}"
    );
    // Scripts only from a file: each `<script src=...>` is empty.
    for (at, _) in body.match_indices("<script") {
        let tag_end = body[at..].find('>').unwrap() + at;
        assert!(
            body[at..tag_end].contains(" src=\""),
            "{what}: inline script"
        );
        assert!(
            body[tag_end + 1..].starts_with("</script>"),
            "{what}: a script with a body"
        );
    }
    assert!(!body.contains("style=\""), "{what}: a style attribute");
    assert!(!body.contains("<style"), "{what}: a style element");
    assert!(!body.contains("javascript:"), "{what}: a javascript: URL");
    for (tag, attributes) in tags(body) {
        for attribute in attributes {
            assert!(
                !attribute.starts_with("on"),
                "{what}: an inline handler `{attribute}` on <{tag}>"
            );
        }
    }
    if !reply.status.is_success() {
        let lower = body.to_lowercase();
        for word in ["panicked", "backtrace", "rust_backtrace", ".rs:"] {
            assert!(!lower.contains(word), "{what}: `{word}` in\n{body}");
        }
    }
}

fn every_answer_carries_the_security_headers<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let conn = &mut d.conn;
    let failure = failed::<B>(
        conn,
        "import",
        "mail",
        &json!({"actiongroup_name": "import", "results": [
            {"action_name": "parse", "failed": true,
             "errordata": {"data": "bad row", "traceback": "at line 7"},
             "success_output_data": null}],
          "previous_attempts": [{"error": "first"}]}),
    );
    let success = succeeded::<B>(conn, "import", "mail");
    age::<B>(conn, success.id(), Utc::now() - Duration::days(2));
    let busy = running::<B>(conn, "import", "mail");
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET progress_done = 2, progress_total = 4 \
         WHERE id = {}",
        busy.id()
    ))
    .unwrap();
    let waiting = pending::<B>(conn, "import", "other");
    admin::pause_queue(conn, "other").unwrap();

    let mut pages: Vec<(String, u16)> = vec![
        (BASE.to_owned(), 200),
        (d.url("/operations"), 200),
        (d.url("/operations?result=failed&queue=mail"), 200),
        (d.url("/prune"), 200),
        (d.url("/prune?older_than=1d"), 200),
        (d.url("/login"), 200),
        (d.url("/nope"), 404),
        (d.url("/assets/nope.css"), 404),
        (d.url(&format!("/operations/{}", busy.id() + 1000)), 404),
        (d.url("/operations/abc"), 400),
        (d.url("/operations?status=bogus"), 400),
        (d.url("/prune?older_than=soon"), 400),
    ];
    for op in [&failure, &success, &busy, &waiting] {
        pages.push((d.url(&format!("/operations/{}", op.id())), 200));
    }
    for (path, status) in &pages {
        let reply = d.client.get(path);
        reply.expect(*status);
        assert_safe_page(&reply, path);
    }
    let page = d.client.get(&d.url(&format!("/operations/{}", busy.id())));
    assert!(page.body.contains("<progress value=\"2\" max=\"4\""));

    // The answers to actions, refused or not.
    let retry_success = d.url(&format!("/operations/{}/retry", success.id()));
    let reply = d.client.post_form(&retry_success, &[]);
    reply.expect(409);
    assert_safe_page(&reply, "retrying a success");
    let reply = d.client.post(&retry_success, &[]);
    reply.expect(403);
    assert_safe_page(&reply, "a post without its CSRF field");
    let reply = d.client.post_form(&d.url("/prune"), &[("older_than", "x")]);
    reply.expect(400);
    assert_safe_page(&reply, "pruning with a bad age");
    let reply = d
        .client
        .post_form(&d.url(&format!("/operations/{}/retry", failure.id())), &[]);
    reply.expect(303);
    assert_headers(&reply, "a redirect");
    let reply = d.client.get(reply.location());
    assert!(reply.flash().is_some());
    assert_safe_page(&reply, "a page with a message");

    // Plain answers carry the headers too.
    for path in [
        d.url("/metrics"),
        d.url("/healthz"),
        d.url("/assets/dashboard.css"),
        d.url("/assets/dashboard.js"),
    ] {
        let reply = d.client.get(&path);
        reply.expect(200);
        assert!(!reply.is_html(), "{path}");
        assert_headers(&reply, &path);
    }

    // The pages of the other modes: the login form and its refusal, and read-only.
    let mut login = Client::new(app::<B>(&d.db, BASE, Options::default().token("t0ken")));
    let reply = login.get(BASE);
    reply.expect(401);
    assert_safe_page(&reply, "the login page");
    let reply = login.post(&format!("{BASE}/login"), &[("token", "wrong")]);
    reply.expect(401);
    assert_safe_page(&reply, "a wrong token");
    let reply = login.post(&format!("{BASE}/queues/mail/pause"), &[]);
    reply.expect(401);
    assert_headers(&reply, "an action without the token");
    let mut read_only = Client::new(app::<B>(&d.db, BASE, Options::default().read_only(true)));
    for (path, status) in [(BASE.to_owned(), 200), (format!("{BASE}/prune"), 403)] {
        let reply = read_only.get(&path);
        reply.expect(status);
        assert_safe_page(&reply, &format!("read-only {path}"));
    }
    let reply = read_only.post_form(&format!("{BASE}/queues/mail/pause"), &[]);
    reply.expect(403);
    assert_safe_page(&reply, "a read-only refusal");
}

fn cookies_are_scoped_to_the_mount_path<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let failure = failed::<B>(&mut d.conn, "import", "mail", &json!("no"));

    let page = d.client.get(BASE);
    let cookie = page
        .set_cookie(CSRF_COOKIE)
        .expect("the first page sets the CSRF cookie");
    let token = d.client.cookie(CSRF_COOKIE).unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(
        cookie,
        format!("{CSRF_COOKIE}={token}; Path={BASE}; HttpOnly; SameSite=Lax")
    );
    assert_eq!(
        csrf_field(&page.body),
        token,
        "the forms carry the cookie's token"
    );
    // Kept: later pages set no new one, and carry the same token.
    let page = d
        .client
        .get(&d.url(&format!("/operations/{}", failure.id())));
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    assert_eq!(csrf_field(&page.body), token);
    // Another browser gets its own.
    let mut other = d.new_client();
    other.get(BASE);
    assert_ne!(other.cookie(CSRF_COOKIE).unwrap(), token);
    // A cookie that is not a token the router makes is replaced.
    let mut forger = d.new_client();
    forger.set_cookie(CSRF_COOKIE, "forged");
    let page = forger.get(BASE);
    assert!(page.set_cookie(CSRF_COOKIE).is_some());
    assert_ne!(forger.cookie(CSRF_COOKIE).unwrap(), "forged");
    // Answers that are not pages set none.
    for path in [
        d.url("/metrics"),
        d.url("/healthz"),
        d.url("/assets/dashboard.js"),
    ] {
        let mut fresh = d.new_client();
        let reply = fresh.get(&path);
        assert!(
            reply.set_cookies().is_empty(),
            "{path}: {:?}",
            reply.set_cookies()
        );
    }

    // The message an action leaves, and its removal once shown.
    let reply = d
        .client
        .post_form(&d.url(&format!("/operations/{}/retry", failure.id())), &[]);
    reply.expect(303);
    let flash = reply.set_cookie(FLASH_COOKIE).unwrap();
    assert!(
        flash.ends_with(&format!("; Path={BASE}; HttpOnly; SameSite=Lax")),
        "{flash}"
    );
    let page = d.client.get(reply.location());
    assert_eq!(
        page.set_cookie(FLASH_COOKIE),
        Some(format!("{FLASH_COOKIE}=; Path={BASE}; Max-Age=0; HttpOnly; SameSite=Lax").as_str())
    );

    // The login cookie.
    let mut login = Client::new(app::<B>(&d.db, BASE, Options::default().token("t0ken")));
    let reply = login.post(&format!("{BASE}/login"), &[("token", "t0ken")]);
    reply.expect(303);
    let cookie = reply.set_cookie(TOKEN_COOKIE).unwrap();
    assert!(
        cookie.ends_with(&format!("; Path={BASE}; HttpOnly; SameSite=Lax")),
        "{cookie}"
    );
}

fn mounted_at_the_root_links_and_cookies_use_the_root<B: TestBackend>() {
    let mut d = Dashboard::<B>::at_root(Options::default());
    let failure = failed::<B>(&mut d.conn, "import", "mail", &json!("no"));
    pending::<B>(&mut d.conn, "import", "mail");

    let page = d.client.get("/");
    page.expect(200);
    assert_safe_page(&page, "the overview at the root");
    let cookie = page.set_cookie(CSRF_COOKIE).unwrap();
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    let links = attributes(&page.body, "href");
    for link in [
        "/",
        "/operations",
        "/prune",
        "/assets/dashboard.css",
        "/operations?queue=mail",
    ] {
        assert!(links.contains(&link.to_owned()), "{link} not in {links:?}");
    }
    assert!(links.contains(&format!("/operations/{}", failure.id())));
    assert!(
        links.iter().all(|link| !link.starts_with("//")),
        "{links:?}"
    );
    assert_eq!(attributes(&page.body, "src"), ["/assets/dashboard.js"]);
    let actions = attributes(&page.body, "action");
    assert!(actions.contains(&"/operations".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"/queues/mail/pause".to_owned()),
        "{actions:?}"
    );

    // Actions redirect within the root, and their message is scoped to it.
    let reply = d.client.post_form("/queues/mail/pause", &[]);
    reply.expect(303);
    assert_eq!(reply.location(), "/");
    assert!(reply
        .set_cookie(FLASH_COOKIE)
        .unwrap()
        .ends_with("; Path=/; HttpOnly; SameSite=Lax"));
    assert_eq!(admin::paused_queues(&mut d.conn).unwrap(), ["mail"]);
    let page = d.client.get("/");
    assert!(page.flash().unwrap().starts_with("Queue mail is paused"));
    let reply = d
        .client
        .post_form(&format!("/operations/{}/retry", failure.id()), &[]);
    reply.expect(303);
    assert_eq!(reply.location(), format!("/operations/{}", failure.id()));
    let page = d.client.get(reply.location());
    page.expect(200);
    assert!(attributes(&page.body, "href").contains(&"/operations?queue=mail".to_owned()));
    let reply = d.client.get(&format!("/operations?id={}", failure.id()));
    assert_eq!(reply.location(), format!("/operations/{}", failure.id()));

    let page = d.client.get("/nope");
    page.expect(404);
    assert_safe_page(&page, "a missing page at the root");
    assert!(attributes(&page.body, "href").contains(&"/".to_owned()));
    let reply = d.client.get("/healthz");
    reply.expect(200);
    d.client.get("/assets/dashboard.css").expect(200);
    let page = d.client.get("/operations?older=1");
    page.expect(200);
    let page = d.client.get("/prune?older_than=1h");
    assert_eq!(attributes(&page.body, "action"), ["/operations", "/prune"]);

    // Logging in at the root.
    let mut login = Client::new(app::<B>(&d.db, "", Options::default().token("t0ken")));
    let page = login.get("/");
    page.expect(401);
    assert!(attributes(&page.body, "action").contains(&"/login".to_owned()));
    let reply = login.post("/login", &[("token", "t0ken")]);
    reply.expect(303);
    assert_eq!(reply.location(), "/");
    assert!(reply
        .set_cookie(TOKEN_COOKIE)
        .unwrap()
        .ends_with("; Path=/; HttpOnly; SameSite=Lax"));
    login.get("/").expect(200);
}
