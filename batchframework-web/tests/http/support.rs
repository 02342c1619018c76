//! What the HTTP tests share: a client that sends requests to the router with
//! `tower::ServiceExt::oneshot` and keeps cookies between them as a browser would, the dashboard
//! mounted on a throwaway database, a few ways to put operations in it, and readers for the
//! parts of a page the tests look at.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use batchframework_diesel::admin;
use batchframework_diesel::{BatchOperation, ContextRef, OperationFilter};
use batchframework_tests::{TestBackend, TestDatabase};
use batchframework_web::Options;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Where the tests mount the dashboard, as an application would.
pub(crate) const BASE: &str = "/admin/batch";

/// One answer: its status, headers and body as text.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {}; body:\n{}",
            self.status,
            self.body
        );
        self
    }

    /// The value of header `name` (the first, if several).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Where a redirect points.
    #[track_caller]
    pub(crate) fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer", self.status))
    }

    /// Every `Set-Cookie` of the answer.
    pub(crate) fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    /// The `Set-Cookie` that sets cookie `name`, if any.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|cookie| cookie.starts_with(&format!("{name}=")))
    }

    /// Whether the body is an HTML page.
    pub(crate) fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|kind| kind.starts_with("text/html"))
    }

    /// The page's text (tags removed, entities decoded, spaces collapsed).
    pub(crate) fn text(&self) -> String {
        text(&self.body)
    }

    /// The message an action left on the page, if there is one.
    pub(crate) fn flash(&self) -> Option<String> {
        let start = self.body.find("<p class=\"flash\"")?;
        let end = self.body[start..].find("</p>")? + start;
        Some(text(&self.body[start..end]))
    }
}

/// A browser, as far as the dashboard can tell: it keeps the cookies the router sets and sends
/// them back, and sends the extra headers it is given on every request.
pub(crate) struct Client {
    runtime: tokio::runtime::Runtime,
    app: Router,
    cookies: BTreeMap<String, String>,
    /// Headers sent with every request (`Authorization`, `Sec-Fetch-Site`).
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl Client {
    /// A client of `app`, with its own multi-threaded runtime (the handlers use
    /// `spawn_blocking`).
    pub(crate) fn new(app: Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Client {
            runtime,
            app,
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// `GET uri`.
    pub(crate) fn get(&mut self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], Body::empty())
    }

    /// `POST uri` with `fields` as a form.
    pub(crate) fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form(fields);
        self.send(
            Method::POST,
            uri,
            &[(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded".to_owned(),
            )],
            Body::from(body),
        )
    }

    /// `POST uri` with `fields` and the CSRF token of the client's cookie, as the dashboard's
    /// forms send it.
    pub(crate) fn post_form(&mut self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(uri, &all)
    }

    /// The CSRF token: the cookie's, after a page has set it (a GET of the overview if no page
    /// has yet).
    pub(crate) fn csrf(&mut self) -> String {
        if self.cookie(CSRF_COOKIE).is_none() {
            self.get(BASE);
        }
        self.cookie(CSRF_COOKIE)
            .expect("a page sets the CSRF cookie")
            .to_owned()
    }

    /// Sends a request with the client's cookies and headers and keeps the cookies it sets.
    pub(crate) fn send(
        &mut self,
        method: Method,
        uri: &str,
        extra: &[(HeaderName, String)],
        body: Body,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if !self.cookies.is_empty() {
            let cookies = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookies);
        }
        for (name, value) in self.headers.iter().chain(extra) {
            request = request.header(name, value);
        }
        let request = request.body(body).expect("a well-formed request");
        let app = self.app.clone();
        let reply = self.runtime.block_on(async move {
            let response = app.oneshot(request).await.expect("the router answers");
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("the whole body")
                .to_bytes();
            Reply {
                status,
                headers,
                body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
            }
        });
        for cookie in reply.set_cookies() {
            self.keep(cookie);
        }
        reply
    }

    /// Applies one `Set-Cookie`: sets the cookie, or removes it when it expires now.
    fn keep(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.trim().split_once('=')) else {
            return;
        };
        let expired = parts.any(|attribute| {
            attribute
                .trim()
                .to_ascii_lowercase()
                .strip_prefix("max-age=")
                .is_some_and(|age| age.trim() == "0" || age.trim().starts_with('-'))
        });
        if expired {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    /// The value of cookie `name`, if the client holds it.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sets cookie `name` by hand, as a forger would.
    pub(crate) fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// Forgets every cookie.
    pub(crate) fn clear_cookies(&mut self) {
        self.cookies.clear();
    }
}

/// The CSRF cookie's name.
pub(crate) const CSRF_COOKIE: &str = "batchframework_csrf";
/// The flash message cookie's name.
pub(crate) const FLASH_COOKIE: &str = "batchframework_flash";
/// The token cookie's name.
pub(crate) const TOKEN_COOKIE: &str = "batchframework_token";

/// `fields` as an `application/x-www-form-urlencoded` body (or query string).
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The dashboard on a throwaway database, and a connection to look at and change the database
/// directly. Fields drop in order: the client (and the router's pool) before the database.
pub(crate) struct Dashboard<B: TestBackend> {
    pub(crate) client: Client,
    pub(crate) conn: B::Connection,
    /// Where the router is mounted (`""` at the root).
    pub(crate) base: String,
    pub(crate) db: TestDatabase,
}

impl<B: TestBackend> Dashboard<B> {
    /// A migrated database with the dashboard nested under [`BASE`].
    pub(crate) fn nested(options: Options) -> Self {
        Self::mounted(BASE, options)
    }

    /// A migrated database with the dashboard served as it is, at the root.
    pub(crate) fn at_root(options: Options) -> Self {
        Self::mounted("", options)
    }

    fn mounted(base: &str, options: Options) -> Self {
        let db = B::create_database();
        let mut conn = B::connect(&db);
        batchframework_diesel::run_migrations(&mut conn).expect("run the migrations");
        let client = Client::new(app::<B>(&db, base, options));
        Dashboard {
            client,
            conn,
            base: base.to_owned(),
            db,
        }
    }

    /// A path under the dashboard (`/` is the overview).
    pub(crate) fn url(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{path}", self.base)
    }

    /// Another client of the same router, without cookies: a second browser.
    pub(crate) fn new_client(&self) -> Client {
        Client::new(self.client.app.clone())
    }

    /// Every operation, newest first, and the paused queues: what "the database did not
    /// change" compares.
    pub(crate) fn snapshot(&mut self) -> (Vec<BatchOperation>, Vec<String>) {
        (
            OperationFilter::new().load(&mut self.conn).expect("load"),
            admin::paused_queues(&mut self.conn).expect("paused queues"),
        )
    }

    /// Operation `id` as stored now.
    pub(crate) fn find(&mut self, id: i64) -> BatchOperation {
        BatchOperation::find(&mut self.conn, id).expect("find the operation")
    }
}

/// The dashboard's router on `db` (a pool of two connections) mounted under `base` (`""`: at
/// the root).
pub(crate) fn app<B: TestBackend>(db: &TestDatabase, base: &str, options: Options) -> Router {
    let router = batchframework_web::router(B::pool(db, 2), options);
    if base.is_empty() {
        router
    } else {
        Router::new().nest(base, router)
    }
}

/// A pending operation of `kind` on `queue`.
pub(crate) fn pending<B: TestBackend>(
    conn: &mut B::Connection,
    kind: &str,
    queue: &str,
) -> BatchOperation {
    BatchOperation::create_asynchronous(kind)
        .queue(queue)
        .insert(conn)
        .expect("insert")
}

/// A running operation of `kind` on `queue`.
pub(crate) fn running<B: TestBackend>(
    conn: &mut B::Connection,
    kind: &str,
    queue: &str,
) -> BatchOperation {
    let mut op = pending::<B>(conn, kind, queue);
    op.mark_as_running(conn).expect("mark as running");
    op
}

/// An operation of `kind` on `queue` that ran and failed with `output`.
pub(crate) fn failed<B: TestBackend>(
    conn: &mut B::Connection,
    kind: &str,
    queue: &str,
    output: &Value,
) -> BatchOperation {
    let mut op = running::<B>(conn, kind, queue);
    op.finish_failed(conn, output).expect("finish failed");
    op
}

/// An operation of `kind` on `queue` that ran and succeeded.
pub(crate) fn succeeded<B: TestBackend>(
    conn: &mut B::Connection,
    kind: &str,
    queue: &str,
) -> BatchOperation {
    let mut op = running::<B>(conn, kind, queue);
    op.finish(conn).expect("finish");
    op
}

/// A context object reference.
pub(crate) fn context(kind: &'static str, id: &str) -> ContextRef {
    ContextRef::new(kind, id)
}

pub(crate) use batchframework_tests::set_timestamp;

/// Moves every timestamp of operation `id` that is set to `at`: created, started and finished
/// then.
pub(crate) fn age<B: TestBackend>(conn: &mut B::Connection, id: i64, at: DateTime<Utc>) {
    let op = BatchOperation::find(conn, id).expect("find");
    set_timestamp::<B>(conn, id, "created_datetime", at);
    if op.started_running_datetime().is_some() {
        set_timestamp::<B>(conn, id, "started_running_datetime", at);
    }
    if op.finished_datetime().is_some() {
        set_timestamp::<B>(conn, id, "finished_datetime", at);
    }
}

/// HTML entities decoded (those an HTML writer uses).
pub(crate) fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// `text` escaped as an attribute value or text in HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text of an HTML fragment: tags removed, entities decoded, white space collapsed.
pub(crate) fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The part of `html` from the first `start` to the first `end` after it (both included).
#[track_caller]
pub(crate) fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` is not in the page:\n{html}"));
    let to = html[from..]
        .find(end)
        .unwrap_or_else(|| panic!("`{end}` does not follow `{start}`:\n{html}"))
        + from
        + end.len();
    &html[from..to]
}

/// The values of attribute `name` in `html`, decoded, in order.
pub(crate) fn attributes(html: &str, name: &str) -> Vec<String> {
    let marker = format!(" {name}=\"");
    html.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest.find('"').map(|end| unescape(&rest[..end]))
        })
        .collect()
}

/// The CSRF token of the first form of a page (its hidden `csrf` field).
#[track_caller]
pub(crate) fn csrf_field(html: &str) -> String {
    let field = between(html, "name=\"csrf\"", ">");
    attributes(field, "value")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no value in the csrf field `{field}`"))
}

/// The operation ids of a page's rows (`tr data-id`), in order.
pub(crate) fn listed_ids(html: &str) -> Vec<i64> {
    html.match_indices("<tr data-id=\"")
        .filter_map(|(at, marker)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// The cells' text of the overview's row for `queue`.
#[track_caller]
pub(crate) fn queue_row(html: &str, queue: &str) -> Vec<String> {
    let row = between(
        html,
        &format!("<tr data-queue=\"{}\"", escape(queue)),
        "</tr>",
    );
    cells(row)
}

/// The text of each `<td>` of a row.
pub(crate) fn cells(row: &str) -> Vec<String> {
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let content = cell.split_once('>').map_or("", |(_, rest)| rest);
            text(content.split("</td>").next().unwrap_or(""))
        })
        .collect()
}

/// The fields of an operation page (`dl.fields`): each `dt`'s text and its `dd`'s.
pub(crate) fn fields(html: &str) -> BTreeMap<String, String> {
    let list = between(html, "<dl class=\"fields\">", "</dl>");
    list.split("<dt>")
        .skip(1)
        .filter_map(|pair| {
            let (name, rest) = pair.split_once("</dt>")?;
            let value = rest.split_once("<dd>")?.1.split("</dd>").next()?;
            Some((text(name), text(value)))
        })
        .collect()
}

/// The text of the element whose start tag holds `id="{id}"` (an element without children).
#[track_caller]
pub(crate) fn element_text(html: &str, id: &str) -> String {
    let marker = format!(" id=\"{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element with id `{id}` in\n{html}"));
    let content = &html[start..];
    let content = &content[content.find('>').expect("the start tag's end") + 1..];
    text(&content[..content.find("</").expect("the end tag")])
}

/// The `href` of the first link with `class`.
pub(crate) fn link_with_class(html: &str, class: &str) -> Option<String> {
    let marker = format!("<a class=\"{class}\"");
    let start = html.find(&marker)?;
    let tag = &html[start..start + html[start..].find('>')?];
    attributes(tag, "href").into_iter().next()
}
