//! `GET /operations/{id}`: one operation, every field of it, what its run recorded, and the
//! actions that apply to it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use batchframework_diesel::batch::BatchProgress;
use batchframework_diesel::registry::ActionGroupResult;
use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::{BatchOperation, Error, OperationResult, Status};
use maud::{html, Markup};
use serde_json::Value;

use crate::db::with_conn;
use crate::error::WebError;
use crate::filters;
use crate::format;
use crate::pages::layout;
use crate::pages::operations::progress;
use crate::security::Session;
use crate::state::AppState;

/// The handler.
pub(crate) async fn page<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = filters::id("operation", &id)?;
    let (op, batch) = with_conn(&state, move |conn| {
        let op = BatchOperation::find(conn, id)?;
        // A batch's parent (a workflow's too) shows how far its children have come.
        let batch = match BatchOperation::batch_progress(conn, id) {
            Ok(progress) => Some(progress),
            Err(Error::NotABatch { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        Ok((op, batch))
    })
    .await?;
    let heading = format!("Operation {} · {}", op.id(), op.operation_type());
    Ok(layout::page(&session, &heading, render(&session, &op, batch.as_ref())).into_response())
}

fn render(session: &Session, op: &BatchOperation, batch: Option<&BatchProgress>) -> Markup {
    let (attempts, output) = split_attempts(op.output_data_json());
    html! {
        section #summary data-refresh {
            p.status-line {
                "Status " span #status class=(format!("status {}", op.status().as_str())) { (op.status().as_str()) }
                @if op.status() == Status::Finished {
                    " · result " span #result class=(format!("status {}", op.result().as_str())) { (op.result().as_str()) }
                }
                @if op.status() != Status::Finished {
                    @if op.is_waiting_for_dependencies() {
                        " · " span.badge.waiting title="a workflow step: it starts once the steps it depends on have finished" { "waiting for its dependencies" }
                    } @else if op.run_after().is_some_and(|at| at > chrono::Utc::now()) {
                        " · " span.badge.delayed { "delayed" }
                    }
                    @if op.cancel_requested() { " · " span.badge.cancelling { "cancelling" } }
                }
                @if op.progress().is_some() && op.status() != Status::Finished { " · " (progress(op)) }
            }
            @if !session.read_only { (actions(session, op)) }
            (fields(session, op))
            @if let Some(batch) = batch { (children(batch)) }
        }
        section #input {
            details open {
                summary { h2 { "Input" } }
                @if op.input_data_json().trim().is_empty() || op.input_data_json().trim() == "null" {
                    p.muted { "No input." }
                } @else {
                    pre.json { (format::pretty_json(op.input_data_json())) }
                }
            }
        }
        section #output data-refresh {
            @if let Some(run) = output.as_ref().and_then(|value| serde_json::from_value::<ActionGroupResult>(value.clone()).ok()) {
                h2 { "Actions" }
                (action_results(&run))
            }
            details open[op.status() == Status::Finished] {
                summary { h2 { "Output" } }
                pre.json {
                    @match &output {
                        Some(value) => (serde_json::to_string_pretty(value).unwrap_or_default()),
                        None => (format::pretty_json(op.output_data_json())),
                    }
                }
            }
            @if !attempts.is_empty() {
                h2 { "Earlier attempts" }
                ol.attempts {
                    @for attempt in &attempts {
                        li {
                            details {
                                summary { (format::failure_summary(&attempt.to_string())) }
                                pre.json { (serde_json::to_string_pretty(attempt).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn actions(session: &Session, op: &BatchOperation) -> Markup {
    let path = |verb: &str| session.link(&format!("/operations/{}/{verb}", op.id()));
    let retryable = op.status() == Status::Finished && op.result() == OperationResult::Failed;
    let cancellable = op.status() != Status::Finished && !op.cancel_requested();
    html! {
        div.actions {
            @if retryable { (layout::action_button(session, "retry", Some("retry"), &path("retry"), "Retry")) }
            @if cancellable { (layout::action_button(session, "cancel", Some("cancel"), &path("cancel"), "Cancel")) }
        }
    }
}

/// A batch's parent: its children finished so far, as a bar, and how they ended.
fn children(batch: &BatchProgress) -> Markup {
    let (done, total) = (batch.finished(), batch.total);
    html! {
        p #children {
            "Children: "
            @if total > 0 {
                progress value=(done.clamp(0, total)) max=(total) title=(format!("{done} of {total}")) {
                    (done) " of " (total)
                }
                " "
            }
            (done) " of " (total) " finished · " (batch.succeeded) " succeeded · " (batch.failed) " failed"
        }
    }
}

fn fields(session: &Session, op: &BatchOperation) -> Markup {
    let queue_link = session.link(&format!(
        "/operations?queue={}",
        format::url_component(op.queue())
    ));
    html! {
        dl.fields {
            dt { "Id" } dd { (op.id()) }
            dt { "Type" } dd { (op.operation_type()) }
            dt { "Queue" } dd { a href=(queue_link) { (op.queue()) } }
            dt { "Priority" } dd { (op.priority()) }
            dt { "Attempts" } dd { (op.attempts()) " of " (op.max_attempts()) }
            dt { "Context object" }
            dd {
                @match (op.context_object_type(), op.context_object_id()) {
                    (Some(kind), Some(id)) => {
                        a href=(session.link(&format!(
                            "/operations?context_type={}&context_id={}",
                            format::url_component(kind),
                            format::url_component(id)
                        ))) { (kind) " " (id) }
                    }
                    _ => span.muted { "—" },
                }
            }
            dt { "Started by" } dd { (op.started_by().unwrap_or("—")) }
            dt { "Created" } dd { (format::time(op.created_datetime())) }
            dt { "Runs after" }
            dd {
                @if op.is_waiting_for_dependencies() { "the steps it depends on have finished" }
                @else { (format::maybe_time(op.run_after())) }
            }
            dt { "Started running" } dd { (format::maybe_time(op.started_running_datetime())) }
            dt { "Finished" } dd { (format::maybe_time(op.finished_datetime())) }
            dt { "Worker" } dd { (op.locked_by().unwrap_or("—")) }
            dt { "Last heartbeat" } dd { (format::maybe_time(op.heartbeat_datetime())) }
            dt { "Cancel requested" } dd { (if op.cancel_requested() { "yes" } else { "no" }) }
            @if let Some(parent) = op.parent_id() {
                dt { "Batch" }
                dd { "child of " a href=(session.link(&format!("/operations/{parent}"))) { "operation " (parent) } }
            }
        }
    }
}

fn action_results(run: &ActionGroupResult) -> Markup {
    html! {
        table.action-results {
            thead { tr { th { "Action" } th { "Failed" } th { "Error" } th { "Output" } } }
            tbody {
                @for result in &run.results {
                    tr class=[result.failed.then_some("failed")] {
                        td { (result.action_name) }
                        td { (if result.failed { "yes" } else { "no" }) }
                        td {
                            @if let Some(error) = &result.errordata {
                                span.error-text { (format::plain(&error.data)) }
                                @if !error.traceback.is_empty() {
                                    details { summary { "Traceback" } pre { (error.traceback) } }
                                }
                            }
                        }
                        td {
                            @if let Some(output) = &result.success_output_data {
                                pre.json { (serde_json::to_string_pretty(output).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The output without its `previous_attempts` list, and that list (what each earlier attempt
/// recorded, oldest first). `None` for the output when it is not a JSON object.
fn split_attempts(output: &str) -> (Vec<Value>, Option<Value>) {
    match serde_json::from_str::<Value>(output) {
        Ok(Value::Object(mut object)) => {
            let attempts = match object.remove("previous_attempts") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            (attempts, Some(Value::Object(object)))
        }
        _ => (Vec::new(), None),
    }
}
