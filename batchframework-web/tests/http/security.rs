//! The security rules of the crate docs, each tried against every action with the database
//! checked unchanged after each refusal: the CSRF token (cookie and field must both be there and
//! match), cross-site requests, read-only mode, and token mode (login form, bearer token, the
//! routes that answer without it).

use axum::http::header::{self, HeaderName};
use batchframework_diesel::admin;
use batchframework_tests::{backend_tests, TestBackend};
use batchframework_web::Options;
use chrono::{Duration, Utc};
use serde_json::json;

use super::support::{
    age, failed, pending, running, succeeded, Dashboard, BASE, CSRF_COOKIE, TOKEN_COOKIE,
};

backend_tests!(
    posts_without_the_matching_csrf_token_are_refused,
    cross_site_posts_are_refused,
    read_only_shows_no_action_and_refuses_every_post,
    token_mode_asks_for_the_token,
    token_mode_refuses_actions_without_the_token,
);

/// A database with something for every action to change: a failure to retry, pending and
/// running work to cancel, a queue to pause and one to resume, and an old operation to prune.
/// Returns every action's path and form fields (without the CSRF token).
fn actionable<B: TestBackend>(
    d: &mut Dashboard<B>,
) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let conn = &mut d.conn;
    let failure = failed::<B>(conn, "import", "mail", &json!("no"));
    let waiting = pending::<B>(conn, "import", "mail");
    let busy = running::<B>(conn, "import", "mail");
    let old = succeeded::<B>(conn, "import", "mail");
    age::<B>(conn, old.id(), Utc::now() - Duration::days(2));
    admin::pause_queue(conn, "sleepy").unwrap();
    vec![
        (
            d.url(&format!("/operations/{}/retry", failure.id())),
            vec![],
        ),
        (
            d.url(&format!("/operations/{}/cancel", waiting.id())),
            vec![],
        ),
        (d.url(&format!("/operations/{}/cancel", busy.id())), vec![]),
        (d.url("/queues/mail/pause"), vec![]),
        (d.url("/queues/sleepy/resume"), vec![]),
        (d.url("/prune"), vec![("older_than", "1d")]),
    ]
}

fn posts_without_the_matching_csrf_token_are_refused<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let actions = actionable(&mut d);
    let before = d.snapshot();
    let other_token = "ab".repeat(32);
    let mut stranger = d.new_client();
    d.client.get(BASE).expect(200);
    let csrf = d.client.csrf();
    assert_eq!(csrf.len(), 64);
    for (path, fields) in &actions {
        let with = |token: &str| {
            let mut all = vec![("csrf", token.to_owned())];
            all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
            all
        };
        // No cookie at all, with a token in the field.
        let reply = stranger.post(path, &as_refs(&with(&other_token)));
        assert_refused(&reply, path, "no cookie");
        stranger.clear_cookies();
        // The cookie, but no field.
        let reply = d.client.post(path, &as_refs(&with("")[1..]));
        assert_refused(&reply, path, "no field");
        // The cookie, an empty field.
        let reply = d.client.post(path, &as_refs(&with("")));
        assert_refused(&reply, path, "empty field");
        // The cookie and another token.
        let reply = d.client.post(path, &as_refs(&with(&other_token)));
        assert_refused(&reply, path, "wrong token");
        // A cookie the router never set (not a token), matched by the field.
        let mut forger = d.new_client();
        forger.set_cookie(CSRF_COOKIE, "forged");
        let reply = forger.post(path, &as_refs(&with("forged")));
        assert_refused(&reply, path, "forged cookie");
        // A body that is not a form.
        let reply = d.client.send(
            axum::http::Method::POST,
            path,
            &[(header::CONTENT_TYPE, "application/json".to_owned())],
            axum::body::Body::from(format!("{{\"csrf\":\"{csrf}\"}}")),
        );
        assert!(
            reply.status.is_client_error(),
            "{path}: a JSON body answered {}",
            reply.status
        );
        assert_eq!(d.snapshot(), before, "{path} changed the database");
    }
    // The right token works (the refusals were the token's).
    for (path, fields) in &actions {
        let reply = d.client.post_form(path, fields);
        reply.expect(303);
    }
    assert_ne!(d.snapshot(), before);
}

fn as_refs<'a>(fields: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[track_caller]
fn assert_refused(reply: &super::support::Reply, path: &str, why: &str) {
    assert_eq!(reply.status.as_u16(), 403, "{path} ({why}): {}", reply.body);
    assert!(reply.is_html(), "{path} ({why})");
    assert!(reply.text().contains("403 Forbidden"), "{path} ({why})");
    assert!(reply.header("location").is_none());
}

fn cross_site_posts_are_refused<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default());
    let actions = actionable(&mut d);
    let before = d.snapshot();
    let site = HeaderName::from_static("sec-fetch-site");
    // A sibling subdomain (`same-site`) could plant the CSRF cookie: refused as well.
    for origin in ["cross-site", "same-site"] {
        d.client.headers = vec![(site.clone(), origin.to_owned())];
        for (path, fields) in &actions {
            let reply = d.client.post_form(path, fields);
            assert_refused(&reply, path, origin);
            assert!(reply.text().contains("another site"), "{}", reply.text());
        }
    }
    d.client.headers = vec![(site.clone(), "cross-site".to_owned())];
    // A cross-site login is refused too (login CSRF).
    let reply = d.client.post(&d.url("/login"), &[("token", "x")]);
    assert_eq!(reply.status.as_u16(), 403);
    assert_eq!(d.snapshot(), before);
    // Pages can still be linked to from elsewhere.
    d.client.get(BASE).expect(200);
    // From the dashboard itself, the same forms work.
    d.client.headers = vec![(site, "same-origin".to_owned())];
    for (path, fields) in &actions {
        d.client.post_form(path, fields).expect(303);
    }
}

fn read_only_shows_no_action_and_refuses_every_post<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default().read_only(true));
    let actions = actionable(&mut d);
    let before = d.snapshot();
    let ids: Vec<i64> = before.0.iter().map(|op| op.id()).collect();
    let mut pages = vec![
        BASE.to_owned(),
        d.url("/operations"),
        d.url("/operations?result=failed"),
        d.url("/nope"),
    ];
    pages.extend(ids.iter().map(|id| d.url(&format!("/operations/{id}"))));
    for path in &pages {
        let page = d.client.get(path);
        assert!(page.is_html(), "{path}");
        assert!(
            !page.body.contains("method=\"post\""),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("name=\"csrf\""), "{path}");
        for button in ["Retry", "Cancel", "Pause", "Resume", "Delete them"] {
            assert!(
                !page.body.contains(&format!(">{button}</button>")),
                "{path}: {button}"
            );
        }
        assert!(
            !page.body.contains(&format!("href=\"{BASE}/prune")),
            "{path}: no link to prune"
        );
        assert!(page.text().contains("read-only"), "{path}");
    }
    let overview = d.client.get(BASE);
    overview.expect(200);
    assert!(overview
        .body
        .contains("<tr data-queue=\"sleepy\" class=\"is-paused\">"));
    let page = d.client.get(&d.url("/prune?older_than=1d"));
    page.expect(403);
    assert!(page.text().contains("read-only"));
    assert!(!page.body.contains("method=\"post\""));
    let page = d.client.get(&d.url("/prune"));
    page.expect(403);

    for (path, fields) in &actions {
        let reply = d.client.post_form(path, fields);
        assert_refused(&reply, path, "read-only");
        assert!(reply.text().contains("read-only"));
    }
    assert_eq!(d.snapshot(), before);
}

fn token_mode_asks_for_the_token<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default().token("s3cret"));
    let op = pending::<B>(&mut d.conn, "import", "mail");
    for path in [
        BASE.to_owned(),
        d.url("/operations"),
        d.url(&format!("/operations/{}", op.id())),
        d.url("/prune?older_than=1d"),
        d.url("/metrics"),
        d.url("/nope"),
    ] {
        let page = d.client.get(&path);
        page.expect(401);
        assert!(page.is_html(), "{path}");
        assert!(
            page.body.contains(&format!("action=\"{BASE}/login\"")),
            "{path}"
        );
        assert!(page.body.contains("name=\"token\""));
        assert!(
            !page.body.contains("import"),
            "{path}: nothing of the data shows"
        );
    }
    d.client.get(&d.url("/login")).expect(200);

    // Scripts send the token.
    let bearer = |token: &str| vec![(header::AUTHORIZATION, format!("Bearer {token}"))];
    d.client.headers = bearer("s3cret");
    d.client.get(BASE).expect(200);
    let metrics = d.client.get(&d.url("/metrics"));
    metrics.expect(200);
    assert!(metrics.body.contains("queue=\"mail\""));
    for wrong in ["s3cre", "s3cret2", "S3CRET", ""] {
        d.client.headers = bearer(wrong);
        d.client.get(BASE).expect(401);
    }
    d.client.headers = vec![(header::AUTHORIZATION, "Basic czNjcmV0".to_owned())];
    d.client.get(BASE).expect(401);
    d.client.headers.clear();

    // Browsers log in once.
    let reply = d.client.post(&d.url("/login"), &[("token", "wrong")]);
    reply.expect(401);
    assert!(reply.text().contains("That token is not the one"));
    assert!(d.client.cookie(TOKEN_COOKIE).is_none());
    d.client.get(BASE).expect(401);
    let reply = d.client.post(&d.url("/login"), &[("token", "s3cret")]);
    reply.expect(303);
    assert_eq!(reply.location(), BASE);
    let cookie = reply.set_cookie(TOKEN_COOKIE).expect("the token cookie");
    assert!(cookie.contains(&format!("; Path={BASE};")), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains("s3cret"), "{cookie}");
    let page = d.client.get(BASE);
    page.expect(200);
    assert!(page.body.contains("<tr data-queue=\"mail\""));
    d.client
        .get(&d.url(&format!("/operations/{}", op.id())))
        .expect(200);
    // A cookie of another value does not.
    let mut forger = d.new_client();
    forger.set_cookie(TOKEN_COOKIE, "s3cret");
    forger.get(BASE).expect(401);

    // The health check and the static files answer without it.
    let mut anonymous = d.new_client();
    let reply = anonymous.get(&d.url("/healthz"));
    reply.expect(200);
    assert_eq!(reply.body, "ok\n");
    anonymous.get(&d.url("/assets/dashboard.css")).expect(200);
    anonymous.get(&d.url("/assets/dashboard.js")).expect(200);
}

fn token_mode_refuses_actions_without_the_token<B: TestBackend>() {
    let mut d = Dashboard::<B>::nested(Options::default().token("s3cret"));
    let actions = actionable(&mut d);
    let before = d.snapshot();
    // The login page set a CSRF cookie: the forms' tokens are there, only the token is not.
    d.client.get(BASE).expect(401);
    assert!(d.client.cookie(CSRF_COOKIE).is_some());
    for (path, fields) in &actions {
        let reply = d.client.post_form(path, fields);
        reply.expect(401);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(reply.header("location").is_none());
    }
    d.client.headers = vec![(header::AUTHORIZATION, "Bearer wrong".to_owned())];
    for (path, fields) in &actions {
        d.client.post_form(path, fields).expect(401);
    }
    assert_eq!(d.snapshot(), before);
    // With the token in the header: a script, which needs no CSRF token (a cross-site form
    // cannot set that header).
    d.client.headers = vec![(header::AUTHORIZATION, "Bearer s3cret".to_owned())];
    for (path, fields) in &actions {
        d.client.post(path, fields).expect(303);
    }
    assert_ne!(d.snapshot(), before);
}
