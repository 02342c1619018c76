//! The application's own part: an `import` action group that a worker runs, and the two HTTP
//! endpoints that queue an import and report on it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batchframework_diesel::registry::{
    action_fn, ActionError, ActionGroup, Registry, RegistryBuilder, RunArgs,
};
use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::{BatchOperation, ContextRef};
use diesel::r2d2::{ConnectionManager, Pool};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The operation type (the action group's name) of an import.
pub(crate) const IMPORT: &str = "import";

/// The body of `POST /imports`: which file, and how many rows it has (the example's action
/// only pretends to read them).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportRequest {
    /// The file to import; only `.csv` files are accepted (an import of anything else fails,
    /// so the dashboard has a failure to show).
    pub(crate) source: String,
    /// How many rows to "read" (default 200); a row takes about 10 ms.
    #[serde(default = "default_rows")]
    pub(crate) rows: u32,
}

fn default_rows() -> u32 {
    200
}

/// The `import` group: read the rows (with progress, and stopping early when cancelled), then
/// notify. Asynchronous: `Registry::run` records it for a worker and returns at once. On a
/// queue of its own, `imports`, which the registry declares.
pub(crate) fn register<C: WorkerConnection>(builder: RegistryBuilder<C>) -> RegistryBuilder<C> {
    builder.queue("imports").group(
        ActionGroup::new(IMPORT)
            .asynchronous()
            .queue("imports")
            .max_attempts(2)
            .retry_backoff(Duration::from_secs(2))
            .action(action_fn("read-rows", |ctx| {
                let request: ImportRequest = ctx
                    .input()?
                    .ok_or_else(|| ActionError::msg("an import needs its input"))?;
                if !request.source.ends_with(".csv") {
                    return Err(ActionError::msg(format!(
                        "{}: only .csv files can be imported",
                        request.source
                    )));
                }
                let total = i64::from(request.rows);
                for done in 0..total {
                    if done % 20 == 0 && ctx.is_cancel_requested()? {
                        return Ok(json!({ "rows": done, "cancelled": true }));
                    }
                    std::thread::sleep(Duration::from_millis(10)); // the "work"
                    ctx.progress(done + 1, Some(total))?;
                }
                Ok(json!({ "rows": total }))
            }))
            // A group's later actions run even when an earlier one failed: this one reports
            // to whoever started the import either way.
            .action(action_fn("notify", |ctx| {
                let who = ctx.started_by().unwrap_or("nobody").to_owned();
                Ok(json!({ "notified": who }))
            })),
    )
}

/// What the handlers share.
pub(crate) struct Imports<C: WorkerConnection> {
    pub(crate) pool: Pool<ConnectionManager<C>>,
    pub(crate) registry: Arc<Registry<C>>,
}

impl<C: WorkerConnection> Clone for Imports<C> {
    fn clone(&self) -> Self {
        Imports {
            pool: self.pool.clone(),
            registry: Arc::clone(&self.registry),
        }
    }
}

/// `POST /imports` and `GET /imports/{id}`.
pub(crate) fn routes<C: WorkerConnection>(imports: Imports<C>) -> Router {
    Router::new()
        .route("/imports", post(create::<C>))
        .route("/imports/{id}", get(show::<C>))
        .with_state(imports)
}

/// An error as a JSON body with its status code.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<batchframework_diesel::Error> for ApiError {
    fn from(error: batchframework_diesel::Error) -> Self {
        match error {
            batchframework_diesel::Error::NotFound { id } => {
                ApiError(StatusCode::NOT_FOUND, format!("no operation #{id}"))
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

/// Runs `call` with a pooled connection on tokio's blocking pool: Diesel blocks, and the async
/// worker threads must not wait on the database.
async fn blocking<C, T>(
    pool: &Pool<ConnectionManager<C>>,
    call: impl FnOnce(&mut C) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError>
where
    C: WorkerConnection,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || call(&mut *pool.get()?))
        .await
        .map_err(|error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
}

/// `POST /imports` with `{"source": "customers.csv", "rows": 500}`: queues an import and
/// answers `202 Accepted` with its id and where to follow it.
async fn create<C: WorkerConnection>(
    State(imports): State<Imports<C>>,
    Json(request): Json<ImportRequest>,
) -> Result<Response, ApiError> {
    if request.source.trim().is_empty() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`source` must name a file".to_owned(),
        ));
    }
    let registry = Arc::clone(&imports.registry);
    let info = blocking(&imports.pool, move |conn| {
        let args = RunArgs::new()
            .started_by("api")
            .context_object(&ContextRef::new("import_files", request.source.as_str()))
            .input(&request);
        Ok(registry.run(conn, IMPORT, args)?)
    })
    .await?;
    let id = info.operation.id();
    let body = json!({
        "id": id,
        "status": info.operation.status().as_str(),
        "status_url": format!("/imports/{id}"),
        "dashboard_url": format!("/admin/batch/operations/{id}"),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /imports/{id}`: the import's status, progress and, once finished, its result.
async fn show<C: WorkerConnection>(
    State(imports): State<Imports<C>>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let op = blocking(&imports.pool, move |conn| {
        Ok(BatchOperation::find(conn, id)?)
    })
    .await?;
    if op.operation_type() != IMPORT {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no import #{id}")));
    }
    Ok(Json(status_json(&op)))
}

/// An operation as the API shows it.
fn status_json(op: &BatchOperation) -> Value {
    let (done, total) = match op.progress() {
        Some((done, total)) => (Some(done), total),
        None => (None, None),
    };
    let output: Value = serde_json::from_str(op.output_data_json()).unwrap_or(Value::Null);
    json!({
        "id": op.id(),
        "status": op.status().as_str(),
        "result": op.result().as_str(),
        "attempts": op.attempts(),
        "progress": { "done": done, "total": total },
        "created": op.created_datetime().to_rfc3339(),
        "started": op.started_running_datetime().map(|at| at.to_rfc3339()),
        "finished": op.finished_datetime().map(|at| at.to_rfc3339()),
        "output": output,
    })
}
