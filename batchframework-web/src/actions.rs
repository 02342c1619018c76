//! The POST routes: each checks the form's CSRF token, makes one change through the admin API,
//! and redirects back with a message. (Read-only mode and cross-site requests are refused
//! before they get here, by the security layer.)

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use batchframework_diesel::admin::{self, Cancelled};
use batchframework_diesel::worker::WorkerConnection;
use chrono::Utc;
use serde::Deserialize;

use crate::db::with_conn;
use crate::error::WebError;
use crate::filters;
use crate::pages::prune::PruneQuery;
use crate::security::{redirect_with_message, Session};
use crate::state::AppState;

/// The one field of a button's form.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// The prune form: its CSRF token and what to prune.
#[derive(Deserialize)]
pub(crate) struct PruneForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    query: PruneQuery,
}

/// `POST /operations/{id}/retry`.
pub(crate) async fn retry<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let id = filters::id("operation", &id)?;
    let op = with_conn(&state, move |conn| Ok(admin::retry(conn, id)?)).await?;
    let message = format!("Operation {id} is queued again (queue {}).", op.queue());
    Ok(redirect_with_message(
        &session,
        &session.link(&format!("/operations/{id}")),
        &message,
    ))
}

/// `POST /operations/{id}/cancel`.
pub(crate) async fn cancel<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let id = filters::id("operation", &id)?;
    let outcome = with_conn(&state, move |conn| {
        Ok(admin::cancel(conn, id, "dashboard")?)
    })
    .await?;
    let message = match outcome {
        Cancelled::Finished(_) => format!("Operation {id} was cancelled before it ran."),
        Cancelled::Requested(_) => format!(
            "Operation {id} is running: it was asked to stop, and finishes as cancelled when its action next checks."
        ),
    };
    Ok(redirect_with_message(
        &session,
        &session.link(&format!("/operations/{id}")),
        &message,
    ))
}

/// `POST /queues/{name}/pause`.
pub(crate) async fn pause<C: WorkerConnection>(
    state: State<AppState<C>>,
    session: Extension<Session>,
    Path(queue): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    set_paused(state, session, queue, form, true).await
}

/// `POST /queues/{name}/resume`.
pub(crate) async fn resume<C: WorkerConnection>(
    state: State<AppState<C>>,
    session: Extension<Session>,
    Path(queue): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    set_paused(state, session, queue, form, false).await
}

async fn set_paused<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    queue: String,
    form: ActionForm,
    paused: bool,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let name = queue.clone();
    with_conn(&state, move |conn| {
        if paused {
            admin::pause_queue(conn, &name)?;
        } else {
            admin::resume_queue(conn, &name)?;
        }
        Ok(())
    })
    .await?;
    let message = if paused {
        format!("Queue {queue} is paused: workers claim nothing from it until it is resumed.")
    } else {
        format!("Queue {queue} is resumed.")
    };
    Ok(redirect_with_message(
        &session,
        &session.link("/"),
        &message,
    ))
}

/// `POST /prune`.
pub(crate) async fn prune<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Form(form): Form<PruneForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let request = form.query.request(Utc::now())?.ok_or_else(|| {
        WebError::BadRequest("say how old the operations to prune must be (older_than)".to_owned())
    })?;
    let prune = request.prune();
    let deleted = with_conn(&state, move |conn| Ok(prune.run(conn)?)).await?;
    let message = format!(
        "Deleted {deleted} finished operation{}.",
        if deleted == 1 { "" } else { "s" }
    );
    Ok(redirect_with_message(
        &session,
        &session.link("/"),
        &message,
    ))
}
