//! `GET /operations`: every operation matching the form's filters, newest first, in keyset
//! pages; `?id=N` goes to operation N.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::{BatchOperation, OperationResult, Status};
use maud::{html, Markup};

use crate::db::with_conn;
use crate::error::WebError;
use crate::filters::{self, given, ListQuery};
use crate::format;
use crate::pages::layout;
use crate::security::Session;
use crate::state::AppState;

/// Operations per page.
const PAGE_SIZE: u32 = 50;

/// The handler.
pub(crate) async fn page<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    if let Some(id) = given(&query.id) {
        let id = filters::id("id", id)?;
        return Ok(Redirect::to(&session.link(&format!("/operations/{id}"))).into_response());
    }
    // One more than a page: whether an older page exists.
    let filter = query.filter(PAGE_SIZE + 1)?;
    let mut operations = with_conn(&state, move |conn| Ok(filter.load(conn)?)).await?;
    let more = operations.len() > PAGE_SIZE as usize;
    operations.truncate(PAGE_SIZE as usize);
    Ok(layout::page(
        &session,
        "Operations",
        render(&session, &query, &operations, more),
    )
    .into_response())
}

fn render(
    session: &Session,
    query: &ListQuery,
    operations: &[BatchOperation],
    more: bool,
) -> Markup {
    let filters = query.query_string();
    html! {
        (filter_form(session, query))
        @if operations.is_empty() {
            p.empty { "No operation matches." }
        } @else {
            table #operations {
                thead {
                    tr {
                        th.num { "Id" } th { "Type" } th { "Queue" } th { "Status" } th { "Progress" }
                        th { "Created" } th { "Finished" } th { "Started by" } th { "Context" }
                    }
                }
                tbody {
                    @for op in operations {
                        tr data-id=(op.id()) {
                            td.num { a href=(session.link(&format!("/operations/{}", op.id()))) { (op.id()) } }
                            td { (op.operation_type()) }
                            td { (op.queue()) }
                            td { (status_badge(op)) }
                            td { (progress(op)) }
                            td { (format::time(op.created_datetime())) }
                            td { (format::maybe_time(op.finished_datetime())) }
                            td { (op.started_by().unwrap_or("")) }
                            td { (context(op)) }
                        }
                    }
                }
            }
        }
        nav.pages {
            @if given(&query.after).is_some() {
                a href=(session.link(&format!("/operations?{filters}"))) { "← Newest" }
            }
            @if more {
                @if let Some(last) = operations.last() {
                    @let and = if filters.is_empty() { "" } else { "&" };
                    a.next href=(session.link(&format!("/operations?{filters}{and}after={}", last.id()))) { "Older →" }
                }
            }
        }
    }
}

fn filter_form(session: &Session, query: &ListQuery) -> Markup {
    let text = |name: &str, label: &str, value: &Option<String>| {
        html! {
            label {
                span { (label) }
                input type="text" name=(name) value=(given(value).unwrap_or(""));
            }
        }
    };
    let select = |name: &str, label: &str, value: &Option<String>, choices: &[&str]| {
        let chosen = given(value).unwrap_or("");
        html! {
            label {
                span { (label) }
                select name=(name) {
                    option value="" selected[chosen.is_empty()] { "any" }
                    @for choice in choices {
                        option value=(choice) selected[chosen == *choice] { (choice) }
                    }
                }
            }
        }
    };
    let time = |name: &str, label: &str, value: &Option<String>| {
        html! {
            label {
                span { (label) " (UTC)" }
                input type="datetime-local" name=(name) value=(given(value).unwrap_or(""));
            }
        }
    };
    html! {
        form #filters method="get" action=(session.link("/operations")) {
            (text("operation_type", "Type", &query.operation_type))
            (select("status", "Status", &query.status, &["unprocessed", "running", "finished"]))
            (select("result", "Result", &query.result, &["successful", "failed", "not-available"]))
            (text("queue", "Queue", &query.queue))
            (text("started_by", "Started by", &query.started_by))
            (text("context_type", "Context type", &query.context_type))
            (text("context_id", "Context id", &query.context_id))
            (time("created_after", "Created after", &query.created_after))
            (time("created_before", "Created before", &query.created_before))
            div.buttons {
                button type="submit" { "Filter" }
                a href=(session.link("/operations")) { "Clear" }
            }
        }
    }
}

/// The status as a badge, with the result once finished and a cancel request while running.
pub(crate) fn status_badge(op: &BatchOperation) -> Markup {
    let (class, text) = match op.status() {
        Status::Unprocessed if op.run_after().is_some_and(|at| at > chrono::Utc::now()) => {
            ("badge delayed", "delayed".to_owned())
        }
        Status::Finished => (
            match op.result() {
                OperationResult::Failed => "badge failed",
                _ => "badge succeeded",
            },
            op.result().as_str().to_owned(),
        ),
        status => (
            match status {
                Status::Running => "badge running",
                _ => "badge pending",
            },
            status.as_str().to_owned(),
        ),
    };
    html! {
        span class=(class) title=(op.status().as_str()) { (text) }
        @if op.cancel_requested() && op.status() == Status::Running {
            " " span.badge.cancelling { "cancelling" }
        }
    }
}

/// The progress as a bar (or a count when the total is not known), while the operation runs:
/// once finished, its result says how it went (the last progress report may be older than the
/// end, reports being written at most a few times a second).
pub(crate) fn progress(op: &BatchOperation) -> Markup {
    if op.status() == Status::Finished {
        return html! {};
    }
    match op.progress() {
        Some((done, Some(total))) if total > 0 => html! {
            progress value=(done.clamp(0, total)) max=(total) title=(format!("{done} of {total}")) {
                (done) " of " (total)
            }
            " " span.muted { (done) "/" (total) }
        },
        Some((done, _)) => html! { span.muted { (done) " done" } },
        None => html! {},
    }
}

fn context(op: &BatchOperation) -> Markup {
    match (op.context_object_type(), op.context_object_id()) {
        (Some(kind), Some(id)) => html! { (kind) " " (id) },
        _ => html! {},
    }
}
