//! `watch`: follow one operation until it finishes, with a progress bar on a terminal.

use std::time::Duration;

use batchframework_diesel::{BatchConnection, BatchOperation, OperationResult, Status};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{CliError, EXIT_FAILED};
use crate::output::{json, Format, Outcome, Paint};

use super::show::pretty_json;

/// Polls the operation every `interval` until it is finished, then prints its result and
/// output; the exit code says whether it succeeded. The bar follows the progress the
/// operation's action reports or, for a batch's parent, its finished children.
pub(super) fn run<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    id: i64,
    interval: Duration,
) -> Result<Outcome, CliError> {
    // Drawn on stderr, and only when stderr is a terminal (indicatif hides it otherwise).
    let bar = if format.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    let mut showing_bar = false;
    // Whether the operation may be a batch's parent, whose bar counts its finished children;
    // asked once, then remembered.
    let mut may_be_batch = true;
    let op = loop {
        let op = match BatchOperation::find(conn, id) {
            Ok(op) => op,
            Err(error) => {
                bar.finish_and_clear();
                return Err(error.into());
            }
        };
        if op.status() == Status::Finished {
            bar.finish_and_clear();
            break op;
        }
        let state = if op.cancel_requested() {
            format!("{} (cancel requested)", op.status())
        } else {
            op.status().to_string()
        };
        bar.set_message(format!("{} #{} {state}", op.operation_type(), op.id()));
        let progress = match op.progress() {
            None if may_be_batch => match BatchOperation::batch_progress(conn, id) {
                Ok(batch) => Some((batch.finished(), Some(batch.total))),
                Err(batchframework_diesel::Error::NotABatch { .. }) => {
                    may_be_batch = false;
                    None
                }
                Err(error) => {
                    bar.finish_and_clear();
                    return Err(error.into());
                }
            },
            progress => progress,
        };
        match progress {
            Some((done, Some(total))) => {
                if !showing_bar {
                    bar.set_style(bar_style());
                    showing_bar = true;
                }
                bar.set_length(u64::try_from(total).unwrap_or(0));
                bar.set_position(u64::try_from(done).unwrap_or(0));
            }
            Some((done, None)) => {
                bar.set_message(format!(
                    "{} #{} {state}: {done} done",
                    op.operation_type(),
                    op.id()
                ));
                bar.tick();
            }
            None => bar.tick(),
        }
        std::thread::sleep(interval);
    };
    let exit_code = if op.result() == OperationResult::Successful {
        0
    } else {
        EXIT_FAILED
    };
    let stdout = if format.json {
        json(&op)?
    } else {
        let result = match op.result() {
            OperationResult::Successful => format.paint("successful", Paint::Green),
            other => format.paint(other.as_str(), Paint::Red),
        };
        let mut text = format!("{} #{} finished: {result}\n", op.operation_type(), op.id());
        let output = op.output_data_json();
        if !output.is_empty() {
            let pretty = pretty_json(output).unwrap_or_else(|| output.to_owned());
            text.push_str(&format!(
                "{}\n{pretty}\n",
                format.paint("output:", Paint::Bold)
            ));
        }
        text
    };
    Ok(Outcome { stdout, exit_code })
}

/// `[=====>    ] 40/100 (40%) send-email #7 running`.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("[{bar:40}] {pos}/{len} ({percent}%) {msg} {elapsed}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
