//! The layer every request passes: where the router is mounted, the token check, the CSRF
//! cookie, read-only mode, the security headers, and error pages.

use axum::extract::{OriginalUri, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use batchframework_diesel::worker::WorkerConnection;
use serde::Deserialize;

use crate::error::{ErrorPage, WebError};
use crate::format::url_component;
use crate::pages::layout;
use crate::state::AppState;

const CSRF_COOKIE: &str = "batchframework_csrf";
const TOKEN_COOKIE: &str = "batchframework_token";
const FLASH_COOKIE: &str = "batchframework_flash";

/// What a page needs to know about the request it answers: set by [`guard`] on every request.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Where the router is mounted, without a trailing slash (`""` at the root).
    pub(crate) base: String,
    /// The CSRF token forms carry (the browser's cookie).
    pub(crate) csrf: String,
    /// The message an action left for the page it redirected to.
    pub(crate) flash: Option<String>,
    /// The dashboard's title.
    pub(crate) title: String,
    /// Whether actions are hidden and refused.
    pub(crate) read_only: bool,
    /// How often pages refresh their figures (0: never).
    pub(crate) refresh_seconds: u32,
    /// The request carries the token in its `Authorization` header: a script, not a browser
    /// (a cross-site form cannot set that header), so it needs no CSRF token.
    pub(crate) by_header: bool,
}

impl Session {
    /// A path under the router, `path` starting with `/`. The overview of a router mounted
    /// under `/admin/batch` is `/admin/batch` (axum's `nest` does not route `/admin/batch/`).
    pub(crate) fn link(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{path}", self.base)
    }

    /// Checks a form's CSRF token against the cookie's.
    pub(crate) fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        if self.by_header || same(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "this form's security token does not match your browser's cookie (the page may \
                 be older than the cookie, or cookies are blocked); reload the page and try again"
                    .to_owned(),
            ))
        }
    }
}

/// The middleware: runs before every route and shapes every response.
pub(crate) async fn guard<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let base = mount_point(&request, &path);
    let cookies = request.headers().clone();
    let csrf = cookie(&cookies, CSRF_COOKIE)
        .filter(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let new_csrf = match &csrf {
        Some(_) => None,
        None => Some(random_token()),
    };
    let flash = cookie(&cookies, FLASH_COOKIE).map(percent_decode);
    let options = &state.options;
    let session = Session {
        base: base.clone(),
        csrf: csrf
            .clone()
            .or_else(|| new_csrf.clone())
            .unwrap_or_default(),
        flash: flash.clone(),
        title: options.title.clone(),
        read_only: options.read_only,
        refresh_seconds: options.refresh_seconds,
        by_header: options
            .token
            .as_deref()
            .is_some_and(|token| bearer_matches(&request, token)),
    };
    let open = path == "/healthz" || path.starts_with("/assets/") || path == "/login";
    let refused = if !open && !authorized(&request, options.token.as_deref()) {
        Some(
            if request.method() == Method::GET || request.method() == Method::HEAD {
                (StatusCode::UNAUTHORIZED, layout::login(&session, None)).into_response()
            } else {
                unauthorized()
            },
        )
    } else if request.method() == Method::POST {
        refuse_post(&request, &session, csrf.is_some(), &path)
    } else {
        None
    };
    let mut response = match refused {
        Some(response) => response,
        None => {
            request.extensions_mut().insert(session.clone());
            let response = next.run(request).await;
            if path == "/healthz" {
                response
            } else {
                rejection_as_error(response).await
            }
        }
    };
    if let Some(page) = response.extensions().get::<ErrorPage>().cloned() {
        response = (page.status, layout::error(&session, &page)).into_response();
    }
    let status = response.status();
    let headers = response.headers_mut();
    security_headers(headers, path.starts_with("/assets/") && status.is_success());
    let cookie_path = if base.is_empty() { "/" } else { &base };
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"));
    // Only pages carry forms: scrapes and health checks get no cookie.
    if let Some(token) = new_csrf.filter(|_| html) {
        set_cookie(
            headers,
            &format!("{CSRF_COOKIE}={token}; Path={cookie_path}; HttpOnly; SameSite=Lax"),
        );
    }
    if flash.is_some() && !headers.contains_key("x-batchframework-flash") {
        set_cookie(
            headers,
            &format!("{FLASH_COOKIE}=; Path={cookie_path}; Max-Age=0; HttpOnly; SameSite=Lax"),
        );
    }
    headers.remove("x-batchframework-flash");
    response
}

/// axum's own answers to what it refuses before a handler runs (a query string or form its
/// extractors cannot read, a body that is not a form, a method a route does not take) are plain
/// text or empty: as an [`ErrorPage`], the layer renders them as pages like every other error.
async fn rejection_as_error(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|kind| kind.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error())
        || !plain
        || response.extensions().get::<ErrorPage>().is_some()
    {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&body).trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("Error").to_owned();
    }
    let mut response = status.into_response();
    response
        .extensions_mut()
        .insert(ErrorPage { status, message });
    response
}

/// Why a POST is refused before it reaches its handler, if it is.
fn refuse_post(
    request: &Request,
    session: &Session,
    has_cookie: bool,
    path: &str,
) -> Option<Response> {
    // Browsers say where a request comes from: only the dashboard's own pages (or the user,
    // typing) may post. A sibling subdomain (`same-site`) could plant a cookie, so it is refused
    // too; clients that do not send the header are checked by the CSRF token alone.
    let foreign = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
    if foreign {
        return Some(
            WebError::Forbidden("a request from another site is refused".to_owned())
                .into_response(),
        );
    }
    if path == "/login" {
        return None;
    }
    if session.read_only {
        return Some(
            WebError::Forbidden(
                "this dashboard is read-only: it shows the operations but changes nothing"
                    .to_owned(),
            )
            .into_response(),
        );
    }
    if !has_cookie && !session.by_header {
        return Some(session.check_csrf("").err()?.into_response());
    }
    None
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "this dashboard asks for a token: log in with the form, or send Authorization: Bearer <token>",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether the request carries the token (if one is asked for).
fn authorized(request: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    if bearer_matches(request, token) {
        return true;
    }
    cookie(request.headers(), TOKEN_COOKIE)
        .is_some_and(|given| same(given.as_bytes(), hex(token.as_bytes()).as_bytes()))
}

/// Whether the request's `Authorization: Bearer` header holds `token`.
fn bearer_matches(request: &Request, token: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
}

/// Where the router is mounted: the part of the original path before the path it routes.
fn mount_point(request: &Request, routed: &str) -> String {
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map_or(routed, |uri| uri.0.path());
    let base = if routed == "/" {
        original.trim_end_matches('/')
    } else {
        original.strip_suffix(routed).unwrap_or("")
    };
    base.trim_end_matches('/').to_owned()
}

fn security_headers(headers: &mut HeaderMap, asset: bool) {
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

fn set_cookie(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// A redirect to `to` that leaves `message` for the page there.
pub(crate) fn redirect_with_message(session: &Session, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    let path = if session.base.is_empty() {
        "/"
    } else {
        &session.base
    };
    let headers = response.headers_mut();
    set_cookie(
        headers,
        &format!(
            "{FLASH_COOKIE}={}; Path={path}; HttpOnly; SameSite=Lax",
            url_component(message)
        ),
    );
    // Tells the guard not to clear the cookie this response sets.
    headers.insert("x-batchframework-flash", HeaderValue::from_static("1"));
    response
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// 32 random bytes, hex-encoded.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness from the OS: a token nobody can match refuses every form, safely.
        return "0".repeat(64);
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time that depends on the length only, not on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `GET /login`.
pub(crate) async fn login_page(Extension(session): Extension<Session>) -> Response {
    layout::login(&session, None).into_response()
}

/// `POST /login`: sets the token cookie when the token is right.
pub(crate) async fn login<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = state.options.token.as_deref() else {
        return Redirect::to(&session.link("/")).into_response();
    };
    if !same(form.token.trim().as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            layout::login(
                &session,
                Some("That token is not the one this dashboard was started with."),
            ),
        )
            .into_response();
    }
    let mut response = Redirect::to(&session.link("/")).into_response();
    let path = if session.base.is_empty() {
        "/"
    } else {
        &session.base
    };
    set_cookie(
        response.headers_mut(),
        &format!(
            "{TOKEN_COOKIE}={}; Path={path}; HttpOnly; SameSite=Lax",
            hex(token.as_bytes())
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_messages_survive_the_cookie() {
        let message = "Operation 12 queued again; \"quotes\" & <tags> ünïcode";
        assert_eq!(percent_decode(&url_component(message)), message);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert_eq!(random_token().len(), 64);
        assert_ne!(random_token(), random_token());
    }
}
