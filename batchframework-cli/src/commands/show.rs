//! `show`: every field of one operation.

use batchframework_diesel::{BatchConnection, BatchOperation};

use crate::error::CliError;
use crate::output::{format_time, json, Cell, Format, Paint};

use super::list::{progress_text, result_cell, status_cell};

/// Prints the operation with this id.
pub(super) fn run<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    id: i64,
) -> Result<String, CliError> {
    let op = BatchOperation::find(conn, id)?;
    if format.json {
        return json(&op);
    }
    let batch = batch_fields(conn, &op)?;
    describe(format, &op, batch)
}

/// For a batch's parent, how far its children have come; for a child, its batch (and whether
/// it waits for its dependencies, as a workflow step). None for any other operation.
fn batch_fields<C: BatchConnection>(
    conn: &mut C,
    op: &BatchOperation,
) -> Result<Vec<(&'static str, Cell)>, CliError> {
    let mut fields = Vec::new();
    if let Some(parent) = op.parent_id() {
        fields.push(("batch", Cell::plain(format!("child of {parent}"))));
    }
    if op.is_waiting_for_dependencies() {
        fields.push((
            "waiting",
            Cell::plain("for the workflow steps it depends on"),
        ));
    }
    match BatchOperation::batch_progress(conn, op.id()) {
        Ok(progress) => {
            let percent = match progress.total {
                0 => 100,
                total => progress.finished().saturating_mul(100) / total,
            };
            fields.push((
                "children",
                Cell::plain(format!(
                    "{} of {} finished ({percent}%): {} succeeded, {} failed",
                    progress.finished(),
                    progress.total,
                    progress.succeeded,
                    progress.failed
                )),
            ));
        }
        Err(batchframework_diesel::Error::NotABatch { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(fields)
}

/// The operation as `key  value` lines (with `batch`'s after the others), then its input and
/// output JSON.
fn describe(
    format: Format,
    op: &BatchOperation,
    batch: Vec<(&'static str, Cell)>,
) -> Result<String, CliError> {
    let context = match (op.context_object_type(), op.context_object_id()) {
        (Some(kind), Some(id)) => Cell::plain(format!("{kind}:{id}")),
        _ => Cell::none(),
    };
    let progress = op.progress().map(|(done, total)| {
        let percent = total
            .filter(|&t| t > 0)
            .map(|t| format!(" ({}%)", done.saturating_mul(100) / t))
            .unwrap_or_default();
        format!("{}{percent}", progress_text((done, total)))
    });
    let mut fields = vec![
        ("id", Cell::plain(op.id().to_string())),
        ("type", Cell::plain(op.operation_type())),
        ("status", status_cell(op.status())),
        ("result", result_cell(op.result())),
        ("queue", Cell::plain(op.queue())),
        ("priority", Cell::plain(op.priority().to_string())),
        (
            "attempts",
            Cell::plain(format!("{} of {}", op.attempts(), op.max_attempts())),
        ),
        ("progress", Cell::opt(progress)),
        (
            "cancel requested",
            if op.cancel_requested() {
                Cell::painted("yes", Paint::Yellow)
            } else {
                Cell::plain("no")
            },
        ),
        ("context object", context),
        ("started by", Cell::opt(op.started_by())),
        ("locked by", Cell::opt(op.locked_by())),
        ("created", Cell::plain(format_time(op.created_datetime()))),
        ("run after", Cell::time(op.run_after())),
        ("started running", Cell::time(op.started_running_datetime())),
        ("heartbeat", Cell::time(op.heartbeat_datetime())),
        ("finished", Cell::time(op.finished_datetime())),
    ];
    fields.extend(batch);
    let mut text = format.fields(&fields);
    text.push_str(&json_block(format, "input", op.input_data_json()));
    text.push_str(&json_block(format, "output", op.output_data_json()));
    Ok(text)
}

/// `input:` and the stored JSON pretty-printed (keys in stored order), or `input: -`.
fn json_block(format: Format, name: &str, stored: &str) -> String {
    let title = format.paint(&format!("{name}:"), Paint::Bold);
    if stored.is_empty() {
        return format!("{title} {}\n", format.paint("-", Paint::Dim));
    }
    match pretty_json(stored) {
        Some(pretty) => format!("{title}\n{pretty}\n"),
        // Written by hand or by another program: shown as it is.
        None => format!("{title} (not valid JSON)\n{stored}\n"),
    }
}

/// Valid JSON text re-indented by two spaces, keeping its keys' order (a `serde_json::Value`
/// would sort them); `None` when it is not valid JSON.
pub(super) fn pretty_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::pretty_json;

    #[test]
    fn pretty_json_keeps_key_order() {
        let text = r#"{"z":1,"a":[1, 2,{}],"s":"x,:{\"y","e":[]}"#;
        assert_eq!(
            pretty_json(text).as_deref(),
            Some("{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"s\": \"x,:{\\\"y\",\n  \"e\": []\n}")
        );
        assert_eq!(pretty_json("\"done\"").as_deref(), Some("\"done\""));
        assert_eq!(pretty_json("{"), None);
    }
}
