//! `GET /`: one row per queue, the chart of finishes per minute, the latest failures.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use batchframework_diesel::admin::{self, QueueOverview, Throughput};
use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::BatchOperation;
use chrono::Utc;
use maud::{html, Markup};

use crate::db::with_conn;
use crate::error::WebError;
use crate::format;
use crate::pages::{chart, layout};
use crate::security::Session;
use crate::state::AppState;

/// How many finish times of one queue and result the chart reads at most.
const CHART_LIMIT: u64 = 20_000;
/// How many failures the overview lists.
const LATEST_FAILURES: u32 = 10;

struct Overview {
    queues: Vec<QueueOverview>,
    throughput: Throughput,
    failures: Vec<BatchOperation>,
}

/// The handler.
pub(crate) async fn page<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
) -> Result<Response, WebError> {
    let limit = state.options.count_limit;
    let overview = with_conn(&state, move |conn| {
        Ok(Overview {
            queues: admin::queue_overview(conn, limit)?,
            throughput: admin::finishes_per_minute(conn, 60, CHART_LIMIT)?,
            failures: admin::latest_failures(conn, LATEST_FAILURES)?,
        })
    })
    .await?;
    Ok(layout::page(&session, "Overview", render(&session, &overview)).into_response())
}

fn render(session: &Session, overview: &Overview) -> Markup {
    html! {
        section #queues-section data-refresh {
            h2 { "Queues" }
            (queues_table(session, &overview.queues))
        }
        section #throughput data-refresh {
            h2 { "Finished per minute, last hour" }
            (chart::finishes(&overview.throughput))
        }
        section #failures data-refresh {
            h2 { "Latest failures" }
            (failures(session, &overview.failures))
        }
    }
}

fn queues_table(session: &Session, queues: &[QueueOverview]) -> Markup {
    let now = Utc::now();
    if queues.is_empty() {
        return html! { p.empty { "No operations yet: queues appear here once work is queued." } };
    }
    html! {
        table #queues {
            thead {
                tr {
                    th { "Queue" }
                    th.num title="Pending and due now" { "Due" }
                    th.num title="Pending until a later time" { "Delayed" }
                    th.num { "Running" }
                    th.num { "Failed, 1 h" }
                    th.num { "Succeeded, 1 h" }
                    th.num title="How long the oldest due operation has waited" { "Lag" }
                    th.num title="Finished per minute, over the last 5 minutes" { "Per minute" }
                    th { "Paused" }
                    @if !session.read_only { th { span.visually-hidden { "Actions" } } }
                }
            }
            tbody {
                @for queue in queues {
                    @let list = |extra: &str| session.link(&format!("/operations?queue={}{extra}", format::url_component(&queue.queue)));
                    tr data-queue=(queue.queue) class=[queue.paused.then_some("is-paused")] {
                        td { a href=(list("")) { (queue.queue) } }
                        td.num { a href=(list("&status=unprocessed")) { (queue.due) } }
                        td.num { (queue.delayed) }
                        td.num { a href=(list("&status=running")) { (queue.running) } }
                        td.num {
                            a href=(list("&result=failed")) class=[(queue.failed.last_hour.value() > 0).then_some("bad")] {
                                (queue.failed.last_hour)
                            }
                        }
                        td.num { (queue.succeeded.last_hour) }
                        td.num {
                            @match queue.lag(now) {
                                Some(lag) => (format::duration(lag)),
                                None => span.muted { "—" },
                            }
                        }
                        td.num { (format::per_minute(queue.finished_per_minute_5m)) }
                        td.paused { @if queue.paused { span.badge.paused { "paused" } } }
                        @if !session.read_only {
                            td.actions {
                                @let path = |verb: &str| session.link(&format!("/queues/{}/{verb}", format::url_component(&queue.queue)));
                                @if queue.paused {
                                    (layout::action_button(session, "resume-queue", None, &path("resume"), "Resume"))
                                } @else {
                                    (layout::action_button(session, "pause-queue", None, &path("pause"), "Pause"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn failures(session: &Session, failures: &[BatchOperation]) -> Markup {
    if failures.is_empty() {
        return html! { p.empty { "No failures." } };
    }
    html! {
        table.failures {
            thead { tr { th { "Operation" } th { "Type" } th { "Queue" } th { "Finished" } th { "Error" } } }
            tbody {
                @for op in failures {
                    tr data-id=(op.id()) {
                        td { a.operation-link href=(session.link(&format!("/operations/{}", op.id()))) { "#" (op.id()) } }
                        td { (op.operation_type()) }
                        td { (op.queue()) }
                        td { (format::maybe_time(op.finished_datetime())) }
                        td.error-text { (format::failure_summary(op.output_data_json())) }
                    }
                }
            }
        }
        p { a href=(session.link("/operations?result=failed")) { "Every failure →" } }
    }
}
