//! How a dashboard is set up: what it allows and what it shows.

use std::fmt;
use std::sync::Arc;

/// The dashboard's settings, for [`router`](crate::router).
///
/// ```
/// let options = batchframework_web::Options::default()
///     .read_only(true)
///     .token("a long random secret")
///     .title("Billing jobs");
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) read_only: bool,
    pub(crate) token: Option<String>,
    pub(crate) title: String,
    pub(crate) refresh_seconds: u32,
    pub(crate) count_limit: u64,
    pub(crate) metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_only: false,
            token: None,
            title: "Batch operations".to_owned(),
            refresh_seconds: 5,
            count_limit: 1000,
            metrics: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("read_only", &self.read_only)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("title", &self.title)
            .field("refresh_seconds", &self.refresh_seconds)
            .field("count_limit", &self.count_limit)
            .field("metrics", &self.metrics.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl Options {
    /// Shows no action button and refuses every POST with `403`: for people who may look but
    /// not touch.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Asks every request for this token: a browser logs in once with a form (the token is
    /// then kept in an `HttpOnly` cookie), a script sends `Authorization: Bearer <token>`.
    /// `/healthz` and the style and script files answer without it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The name in the pages' header and title (default "Batch operations").
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// How often an open page refreshes its figures, in seconds (default 5; 0 turns it off).
    /// Pages refresh only with JavaScript on; without it they are complete as served.
    pub fn refresh_seconds(mut self, seconds: u32) -> Self {
        self.refresh_seconds = seconds;
        self
    }

    /// Where counts stop and show as "1000+" (default 1000): what one count may read, so a
    /// page over a backlog of millions costs what it does over a thousand.
    pub fn count_limit(mut self, limit: u64) -> Self {
        self.count_limit = limit.max(1);
        self
    }

    /// Text appended to `GET /metrics`: the application's own metrics in Prometheus' text
    /// format, such as the workers' counters from the `metrics` feature of batchframework-diesel
    /// rendered by `metrics-exporter-prometheus` (`move || handle.render()`).
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }
}
