//! `list`: operations matching a filter, newest first, a page at a time.

use batchframework_diesel::{
    BatchConnection, BatchOperation, ContextRef, OperationFilter, OperationResult, Status,
};
use serde::Serialize;

use crate::cli::{FilterArgs, ListArgs, ResultArg, StatusArg};
use crate::error::CliError;
use crate::output::{format_time, json, Cell, Format, Paint, Table};

/// `{"operations": [...], "next_after_id": ...}`.
#[derive(Serialize)]
struct Page<'a> {
    operations: &'a [BatchOperation],
    next_after_id: Option<i64>,
}

/// The filter the shared flags describe.
pub(super) fn filter_of(args: &FilterArgs) -> OperationFilter {
    let mut filter = OperationFilter::new();
    if let Some(operation_type) = &args.operation_type {
        filter = filter.operation_type(operation_type.clone());
    }
    if let Some(queue) = &args.queue {
        filter = filter.queue(queue.clone());
    }
    if let Some((type_key, id)) = &args.context {
        filter = filter.context_object(&ContextRef::new(type_key.clone(), id.clone()));
    }
    if let Some(user) = &args.started_by {
        filter = filter.started_by(user);
    }
    if let Some(after) = args.created_after {
        filter = filter.created_after(after);
    }
    if let Some(before) = args.created_before {
        filter = filter.created_before(before);
    }
    filter
}

/// The stored status `--status` names.
pub(super) fn status_of(status: StatusArg) -> Status {
    match status {
        StatusArg::Unprocessed => Status::Unprocessed,
        StatusArg::Running => Status::Running,
        StatusArg::Finished => Status::Finished,
    }
}

/// The stored result `--result` names.
pub(super) fn result_of(result: ResultArg) -> OperationResult {
    match result {
        ResultArg::NotAvailable => OperationResult::NotAvailable,
        ResultArg::Successful => OperationResult::Successful,
        ResultArg::Failed => OperationResult::Failed,
    }
}

/// Prints a page of matching operations.
pub(super) fn run<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    args: &ListArgs,
) -> Result<String, CliError> {
    let mut filter = filter_of(&args.filter).limit(args.limit);
    if let Some(status) = args.status {
        filter = filter.status(status_of(status));
    }
    if let Some(result) = args.result {
        filter = filter.result(result_of(result));
    }
    if let Some(id) = args.after_id {
        filter = filter.after_id(id);
    }
    let operations = filter.load(conn)?;
    // A full page may have a next one; a short page is the last.
    let next_after_id = match operations.last() {
        Some(last) if operations.len() >= args.limit as usize => Some(last.id()),
        _ => None,
    };
    if format.json {
        return json(&Page {
            operations: &operations,
            next_after_id,
        });
    }
    if operations.is_empty() {
        return Ok("no batch operations match\n".to_owned());
    }
    let mut table = Table::new(&[
        "ID>",
        "TYPE",
        "QUEUE",
        "STATUS",
        "RESULT",
        "ATTEMPTS>",
        "CREATED",
        "FINISHED",
        "PROGRESS>",
    ]);
    for op in &operations {
        table.row(vec![
            Cell::plain(op.id().to_string()),
            Cell::plain(op.operation_type()),
            Cell::plain(op.queue()),
            status_cell(op.status()),
            result_cell(op.result()),
            Cell::plain(format!("{}/{}", op.attempts(), op.max_attempts())),
            Cell::plain(format_time(op.created_datetime())),
            Cell::time(op.finished_datetime()),
            Cell::opt(op.progress().map(progress_text)),
        ]);
    }
    let mut text = format.table(&table);
    if let Some(id) = next_after_id {
        text.push_str(&format!("next page: --after-id {id}\n"));
    }
    Ok(text)
}

/// A status, yellow while running.
pub(super) fn status_cell(status: Status) -> Cell {
    match status {
        Status::Running => Cell::painted(status.as_str(), Paint::Yellow),
        _ => Cell::plain(status.as_str()),
    }
}

/// A result, green or red once there is one.
pub(super) fn result_cell(result: OperationResult) -> Cell {
    match result {
        OperationResult::Successful => Cell::painted(result.as_str(), Paint::Green),
        OperationResult::Failed => Cell::painted(result.as_str(), Paint::Red),
        _ => Cell::painted(result.as_str(), Paint::Dim),
    }
}

/// `40/100`, or `40` when the total is unknown.
pub(super) fn progress_text((done, total): (i64, Option<i64>)) -> String {
    match total {
        Some(total) => format!("{done}/{total}"),
        None => done.to_string(),
    }
}
