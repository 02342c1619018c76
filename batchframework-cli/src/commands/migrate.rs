//! `migrate`: apply the embedded migrations.

use batchframework_diesel::BatchConnection;
use serde::Serialize;

use crate::error::CliError;
use crate::output::{json, Format};

/// `{"applied": [...]}`.
#[derive(Serialize)]
struct Migrated {
    applied: Vec<String>,
}

/// Applies the pending migrations and says which.
pub(super) fn run<C: BatchConnection>(conn: &mut C, format: Format) -> Result<String, CliError> {
    let applied = batchframework_diesel::run_migrations(conn)?;
    if format.json {
        return json(&Migrated { applied });
    }
    if applied.is_empty() {
        return Ok("no pending migrations: the database is up to date\n".to_owned());
    }
    let mut text = format!(
        "applied {} migration{}:\n",
        applied.len(),
        if applied.len() == 1 { "" } else { "s" }
    );
    for version in &applied {
        text.push_str(&format!("  {version}\n"));
    }
    Ok(text)
}
