//! What goes wrong in a request, and the status and page it answers with: a message that says
//! what happened and what to do, never a backtrace.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use batchframework_diesel::Error;

/// An error a handler returns.
#[derive(Debug)]
pub(crate) enum WebError {
    /// What the library said.
    Library(Error),
    /// No connection could be had from the pool.
    Pool(diesel::r2d2::PoolError),
    /// The request itself is wrong (a malformed id, filter or form).
    BadRequest(String),
    /// Refused: read-only mode, a missing or wrong CSRF token, a cross-site request.
    Forbidden(String),
    /// No such page or operation.
    NotFound(String),
    /// Something in this crate failed.
    Internal(String),
}

impl From<Error> for WebError {
    fn from(error: Error) -> Self {
        WebError::Library(error)
    }
}

/// What the security layer turns into a whole page: the status and message of an error.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl WebError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WebError::Library(error) => match error {
                Error::NotFound { .. } => StatusCode::NOT_FOUND,
                Error::IllegalTransition { .. }
                | Error::NotFailed { .. }
                | Error::Conflict { .. } => StatusCode::CONFLICT,
                Error::NotMigrated { .. } | Error::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::ValueTooLong { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            WebError::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            WebError::Library(error) => error.to_string(),
            WebError::Pool(error) => format!(
                "no database connection could be had from the pool ({error}); check that the \
                 database is reachable"
            ),
            WebError::BadRequest(message)
            | WebError::Forbidden(message)
            | WebError::NotFound(message)
            | WebError::Internal(message) => message.clone(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status(),
            message: self.message(),
        };
        if page.status.is_server_error() {
            tracing::warn!(status = %page.status, "batchframework dashboard: {}", page.message);
        }
        // A plain-text body; the security layer, which knows where the router is mounted,
        // replaces it with a whole page.
        let mut response = (page.status, page.message.clone()).into_response();
        response.extensions_mut().insert(page);
        response
    }
}

/// The fallback route.
pub(crate) async fn not_found() -> WebError {
    WebError::NotFound("there is no such page here".to_owned())
}
