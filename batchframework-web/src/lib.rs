//! A web dashboard for [batchframework-diesel](batchframework_diesel): the queues, the
//! operations and their failures, and how fast work is going, in the browser, with retry,
//! cancel, pause and prune, as an [axum] router an application mounts inside its own app (behind
//! its own authentication) or that `batchframework serve` runs on its own.
//!
//! ```no_run
//! use axum::Router;
//! use diesel::r2d2::{ConnectionManager, Pool};
//! use diesel::PgConnection;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new(ConnectionManager::<PgConnection>::new("postgres://localhost/app"))?;
//! let app = Router::new()
//!     // ... the application's own routes ...
//!     .nest("/admin/batch", batchframework_web::router(pool, batchframework_web::Options::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Mounted under `/admin/batch`, the overview is `/admin/batch` (axum's `nest` does not route
//! `/admin/batch/`; add a redirect route there if your users type the slash).
//!
//! # Routes
//!
//! Relative to where the router is mounted, stable for an application to link to:
//!
//! | route | what it is |
//! |---|---|
//! | `GET /` | overview: one row per queue, a chart of finishes per minute, the latest failures |
//! | `GET /operations` | the operations, newest first, filtered by the query string's fields, in keyset pages |
//! | `GET /operations/{id}` | one operation: every field, its input and output, the action results, earlier attempts |
//! | `POST /operations/{id}/retry` | queues a failed operation again ([`admin::retry`](batchframework_diesel::admin::retry)) |
//! | `POST /operations/{id}/cancel` | cancels a pending or running operation ([`admin::cancel`](batchframework_diesel::admin::cancel)) |
//! | `POST /queues/{name}/pause`, `POST /queues/{name}/resume` | pauses or resumes a queue |
//! | `GET /prune`, `POST /prune` | what pruning would delete (a confirmation), and pruning it |
//! | `GET /metrics` | the queues' depth, lag and recent finishes in Prometheus' text format, and the application's own metrics if [`Options::metrics`] is set |
//! | `GET /healthz` | `200 ok` when the database answers and is migrated, `503` with the reason otherwise |
//!
//! The actions answer with a redirect back to the page they came from and a message on it.
//!
//! # Security
//!
//! * Every POST from a browser carries a CSRF token that must match its cookie (`HttpOnly`,
//!   `SameSite=Lax`), and a request a browser marks as coming from another site
//!   (`Sec-Fetch-Site` other than `same-origin` or `none`) is refused. A script that sends the
//!   token in `Authorization: Bearer` needs no CSRF token: a cross-site form cannot set that
//!   header.
//! * [`Options::read_only`] shows no action and refuses every POST.
//! * [`Options::token`] asks for a token (a login form sets it as a cookie; scripts send
//!   `Authorization: Bearer`); without it, put the router behind the application's own
//!   authentication, or on loopback (`batchframework serve` refuses another address without a
//!   token).
//! * Every value from the database is escaped; the pages load their script and style from the
//!   router itself, and the `Content-Security-Policy` allows no inline script.
//! * Errors render a page saying what went wrong, never a backtrace.
//!
//! # Blocking
//!
//! Database calls run on tokio's blocking pool (`spawn_blocking`) with a connection from the
//! r2d2 pool, never on the async workers: a slow query does not stall other requests, and the
//! pool's size bounds how many run at once.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod actions;
mod assets;
mod db;
mod error;
mod filters;
mod format;
mod health;
mod options;
mod pages;
mod security;
mod state;

use axum::routing::{get, post};
use axum::Router;
use batchframework_diesel::worker::WorkerConnection;
use diesel::r2d2::{ConnectionManager, Pool};

pub use options::Options;

/// The dashboard's routes (see the [crate] docs), reading and changing the batch operations
/// of `pool`'s database.
///
/// Mount it with [`Router::nest`] under a path of the application's (links and cookies follow
/// the path it is mounted under), or serve it as it is.
pub fn router<C: WorkerConnection>(pool: Pool<ConnectionManager<C>>, options: Options) -> Router {
    let state = state::AppState::new(pool, options);
    Router::new()
        .route("/", get(pages::overview::page::<C>))
        .route("/operations", get(pages::operations::page::<C>))
        .route("/operations/{id}", get(pages::operation::page::<C>))
        .route("/operations/{id}/retry", post(actions::retry::<C>))
        .route("/operations/{id}/cancel", post(actions::cancel::<C>))
        .route("/queues/{name}/pause", post(actions::pause::<C>))
        .route("/queues/{name}/resume", post(actions::resume::<C>))
        .route(
            "/prune",
            get(pages::prune::page::<C>).post(actions::prune::<C>),
        )
        .route(
            "/login",
            get(security::login_page).post(security::login::<C>),
        )
        .route("/metrics", get(health::metrics::<C>))
        .route("/healthz", get(health::healthz::<C>))
        .route("/assets/{file}", get(assets::serve))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard::<C>,
        ))
        .with_state(state)
}
