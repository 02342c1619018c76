//! The style sheet and the script, compiled into the binary: the pages need no build step, no
//! CDN and no network.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::WebError;

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// `GET /assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return Err(WebError::NotFound(format!(
                "there is no file `{file}` here"
            )))
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            // An hour: a new version of the crate is picked up soon after a deploy.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response())
}
