//! `tracking-sql`: the DDL of the `batchoperation_id` tracking column, for the user's own
//! migrations.

use batchframework_diesel::tracking_column_sql;
use serde::Serialize;

use crate::cli::BackendArg;
use crate::connect::Backend;
use crate::error::CliError;
use crate::output::{json, Format, Paint};

/// The backend `--backend` names.
pub(super) fn backend_of(backend: BackendArg) -> Backend {
    match backend {
        BackendArg::Postgres => Backend::Postgres,
        BackendArg::Sqlite => Backend::Sqlite,
        BackendArg::Mysql => Backend::Mysql,
    }
}

/// `{"table", "backend", "up", "down"}`.
#[derive(Serialize)]
struct TrackingSql<'a> {
    table: &'a str,
    backend: &'static str,
    up: String,
    down: String,
}

/// Prints the up and down SQL for `table`.
pub(super) fn run(format: Format, backend: Backend, table: &str) -> Result<String, CliError> {
    let sql = tracking_column_sql(backend.dialect(), table)?;
    if format.json {
        return json(&TrackingSql {
            table,
            backend: backend.feature(),
            up: sql.up,
            down: sql.down,
        });
    }
    Ok(format!(
        "{}\n{}\n\n{}\n{}\n",
        format.paint("-- up", Paint::Dim),
        sql.up.trim_end(),
        format.paint("-- down", Paint::Dim),
        sql.down.trim_end()
    ))
}
