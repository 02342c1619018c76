//! `GET /healthz` for load balancers and `GET /metrics` for Prometheus.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use batchframework_diesel::admin::{self, QueueOverview};
use batchframework_diesel::worker::WorkerConnection;
use chrono::Utc;

use crate::db::with_conn;
use crate::error::WebError;
use crate::state::AppState;

/// `200 ok` when the database answers and every batchframework migration is applied; `503`
/// and the reason otherwise (only "does not answer" when the dashboard asks for a token: the
/// reason may name hosts and users, and the health check asks for no token). Plain text.
pub(crate) async fn healthz<C: WorkerConnection>(State(state): State<AppState<C>>) -> Response {
    let checked = with_conn(&state, |conn| {
        Ok(batchframework_diesel::pending_migrations(conn)?)
    })
    .await;
    let (status, text) = match checked {
        Ok(pending) if pending.is_empty() => (StatusCode::OK, "ok\n".to_owned()),
        Ok(pending) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the database is not migrated: {} batchframework migration(s) pending ({}); run \
                 `batchframework migrate` or batchframework_diesel::run_migrations\n",
                pending.len(),
                pending.join(", ")
            ),
        ),
        // Behind a token the reason stays in the log: it may name hosts and users.
        Err(error) if state.options.token.is_some() => {
            tracing::warn!("batchframework dashboard health check: {}", error.message());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer\n".to_owned(),
            )
        }
        Err(error) => (
            error.status().max(StatusCode::SERVICE_UNAVAILABLE),
            format!("{}\n", error.message()),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The queues' depth, lag, pause and recent finishes as Prometheus gauges, read from the
/// database at each scrape (with the dashboard's count limit), then the application's own
/// metrics ([`Options::metrics`](crate::Options::metrics)).
pub(crate) async fn metrics<C: WorkerConnection>(
    State(state): State<AppState<C>>,
) -> Result<Response, WebError> {
    let limit = state.options.count_limit;
    let queues = with_conn(&state, move |conn| Ok(admin::queue_overview(conn, limit)?)).await?;
    let mut text = exposition(&queues);
    if let Some(render) = &state.options.metrics {
        text.push_str(&render());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The text format's lines for the queues. Gauge names are those the workers' `metrics`
/// feature reports (`batchframework_queue_depth`, `batchframework_queue_lag_seconds`), so a
/// dashboard built on one works with the other.
fn exposition(queues: &[QueueOverview]) -> String {
    let now = Utc::now();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP batchframework_queue_depth Operations of a queue by state (due, delayed, running); counts stop at the dashboard's count limit.");
    let _ = writeln!(out, "# TYPE batchframework_queue_depth gauge");
    for queue in queues {
        for (state, count) in [
            ("due", queue.due),
            ("delayed", queue.delayed),
            ("running", queue.running),
        ] {
            let _ = writeln!(
                out,
                "batchframework_queue_depth{{queue=\"{}\",state=\"{state}\"}} {}",
                label(&queue.queue),
                count.value()
            );
        }
    }
    let _ = writeln!(out, "# HELP batchframework_queue_lag_seconds How long the oldest due operation of a queue has waited.");
    let _ = writeln!(out, "# TYPE batchframework_queue_lag_seconds gauge");
    for queue in queues {
        let lag = queue
            .lag(now)
            .map_or(0.0, |lag| lag.num_milliseconds() as f64 / 1000.0);
        let _ = writeln!(
            out,
            "batchframework_queue_lag_seconds{{queue=\"{}\"}} {lag}",
            label(&queue.queue)
        );
    }
    let _ = writeln!(
        out,
        "# HELP batchframework_queue_paused Whether a queue is paused (1) or not (0)."
    );
    let _ = writeln!(out, "# TYPE batchframework_queue_paused gauge");
    for queue in queues {
        let _ = writeln!(
            out,
            "batchframework_queue_paused{{queue=\"{}\"}} {}",
            label(&queue.queue),
            u8::from(queue.paused)
        );
    }
    let _ = writeln!(out, "# HELP batchframework_queue_finished_last_hour Operations of a queue finished in the last hour, by result.");
    let _ = writeln!(out, "# TYPE batchframework_queue_finished_last_hour gauge");
    for queue in queues {
        for (result, counts) in [("successful", queue.succeeded), ("failed", queue.failed)] {
            let _ = writeln!(
                out,
                "batchframework_queue_finished_last_hour{{queue=\"{}\",result=\"{result}\"}} {}",
                label(&queue.queue),
                counts.last_hour.value()
            );
        }
    }
    out
}

/// A label value, escaped as the text format asks (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
