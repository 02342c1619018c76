//! Results, group-committed: the keeper writes every final result waiting in one transaction,
//! one fenced `UPDATE` per chunk, and counts what was written.
//!
//! A commit costs a disk flush, and one flush per group instead of one per operation is what
//! lets a worker finish thousands of short operations a second. On MySQL/MariaDB chunks also
//! stay under `max_allowed_packet`; a result too large for any statement is recorded as a
//! failure saying so, instead of stopping the worker.

use serde_json::json;

use crate::backend::worker::sql::{FinishedRow, FINISH_ROW_OVERHEAD};
use crate::backend::Storage;
use crate::backend::WorkerConnection;
use crate::error::Result;
use crate::status::{OperationResult, Status};

use super::super::metrics;
use super::super::shared::{Finished, Outcome, Shared};
use super::Keeper;
use crate::backend::retry_on_deadlock;
use crate::completion::Tally;

impl<C> Keeper<C>
where
    C: WorkerConnection,
{
    /// Writes `results` and counts them. The group is one transaction; should it fail twice
    /// (the second time on a fresh connection), each result is tried alone, and those that
    /// still fail stop the worker with the error: their operations stay `running` and are
    /// taken over by other workers once the lease expires.
    /// Writes `results`; when the database cannot be reached, puts them back to be written
    /// later and returns how long to wait before trying again.
    pub(super) fn write_results(
        &mut self,
        shared: &Shared,
        mut results: Vec<Finished>,
    ) -> Option<std::time::Duration> {
        // Rows in id order: concurrent writers lock them in the same order.
        results.sort_by_key(|finished| finished.id);
        if let Ok((_, Some(budget))) = self.conn.connect() {
            for finished in &mut results {
                refuse_if_too_large(finished, budget);
            }
        }
        let rows: Vec<FinishedRow<'_>> = results
            .iter()
            .map(|finished| FinishedRow {
                id: finished.id,
                attempt: finished.attempt,
                result: finished.result,
                finished_at: finished.finished_at,
                output_data_json: &finished.output,
            })
            .collect();
        let _span =
            tracing::debug_span!("finish", worker = %self.name, operations = rows.len()).entered();
        let parents: Vec<Option<i64>> = results.iter().map(|f| f.parent_id).collect();
        let group = self.try_write(shared, &rows, &parents).or_else(|error| {
            if self.conn.is_lost(&error) {
                self.connection.failed(&shared.outage, &error, "keeper");
            }
            self.conn.discard();
            self.try_write(shared, &rows, &parents)
        });
        let written: Vec<Option<bool>> = match group {
            Ok(written) => {
                self.connection.worked(&shared.outage);
                written.into_iter().map(Some).collect()
            }
            Err(error) if self.conn.is_lost(&error) => {
                self.conn.discard();
                let pause = self.connection.failed(&shared.outage, &error, "keeper");
                drop(rows);
                if !shared.outage.given_up() {
                    shared.put_back_results(results);
                    return Some(pause);
                }
                tracing::error!(%error, "no database for too long; stopping without writing these results");
                shared.keeper_failed(error);
                vec![None; results.len()]
            }
            Err(error) => {
                tracing::warn!(%error, "could not write a group of results; writing each alone");
                rows.iter()
                    .zip(&parents)
                    .map(|(row, parent)| match self.try_write(shared, std::slice::from_ref(row), std::slice::from_ref(parent)) {
                        Ok(written) => written.first().copied(),
                        Err(error) => {
                            tracing::error!(operation.id = row.id, %error, "could not record the result; stopping");
                            self.conn.discard();
                            shared.keeper_failed(error);
                            None
                        }
                    })
                    .collect()
            }
        };
        for (finished, written) in results.iter().zip(&written) {
            // A result reported unwritten may be one an earlier try committed without the
            // keeper hearing back (the connection died with the reply): then it stands.
            let written = match written {
                Some(false) if self.wrote_earlier(finished) => &Some(true),
                written => written,
            };
            match written {
                Some(true) => {
                    shared.count(finished.outcome);
                    metrics::ended(&finished.labels, finished.outcome, finished.result);
                }
                Some(false) => {
                    tracing::warn!(
                        operation.id = finished.id,
                        "lost the operation to another worker; result not written"
                    );
                    shared.count(Outcome::Fenced);
                    metrics::ended(&finished.labels, Outcome::Fenced, finished.result);
                }
                None => {}
            }
            shared.release(finished.id);
        }
        if written.iter().any(Option::is_none) {
            shared.request_stop();
        }
        None
    }

    /// Whether the operation holds exactly this result of this worker's: written by an earlier
    /// try whose commit the keeper never heard back about.
    fn wrote_earlier(&mut self, finished: &Finished) -> bool {
        let Ok((conn, _)) = self.conn.connect() else {
            return false;
        };
        match conn.storage().find_operation(finished.id) {
            Ok(Some(op)) => {
                op.status() == Status::Finished
                    && op.locked_by() == Some(self.name.as_str())
                    && op.attempts() == finished.attempt
                    && op.result() == finished.result
                    && op.finished_datetime() == Some(finished.finished_at.0)
            }
            _ => false,
        }
    }

    /// One attempt at writing `rows`, children of the batches `parents` (one for each row),
    /// in one transaction, fenced per row; which were written. The transaction also counts the
    /// children written into their batches (see `batch`); the batches it completed are counted
    /// in `shared`.
    fn try_write(
        &mut self,
        shared: &Shared,
        rows: &[FinishedRow<'_>],
        parents: &[Option<i64>],
    ) -> Result<Vec<bool>> {
        let name = &self.name;
        let (conn, budget) = self.conn.connect()?;
        let made_due = std::cell::Cell::new(0);
        let written = retry_on_deadlock(|| {
            conn.finish_claimed(name, rows, budget, |conn, written| {
                let mut tally = Tally::default();
                let children = rows.iter().zip(parents).zip(written);
                for ((row, parent), _) in children.filter(|(_, written)| **written) {
                    if let Some(parent) = parent {
                        tally.add(*parent, row.id, row.result);
                    }
                }
                let counted = tally.count(conn.storage())?;
                made_due.set(counted.completed.len() + counted.released);
                Ok(counted.completed)
            })
        })?;
        shared.made_due(made_due.get());
        Ok(written)
    }
}

/// A result whose output cannot fit in any statement the server accepts
/// (`max_allowed_packet`) is recorded as a failure that says so: the operation ends, visibly,
/// instead of failing to be written again and again.
fn refuse_if_too_large(finished: &mut Finished, budget: usize) {
    let size = finished.output.len();
    if size + FINISH_ROW_OVERHEAD <= budget {
        return;
    }
    finished.result = OperationResult::Failed;
    finished.outcome = Outcome::Failed;
    finished.output = json!({
        "error": format!(
            "the output data ({size} bytes) is too large for one statement on this server \
             (max_allowed_packet); it was not stored. Raise max_allowed_packet, or have the \
             action return less"
        )
    })
    .to_string();
}

#[cfg(test)]
mod tests {
    //! The size check on results, without a database.

    use chrono::Utc;
    use serde_json::Value;

    use super::{refuse_if_too_large, Finished, Outcome, FINISH_ROW_OVERHEAD};
    use crate::backend::UtcDateTime;
    use crate::status::OperationResult;
    use crate::worker::metrics::Labels;

    fn finished(output: &str) -> Finished {
        Finished {
            id: 1,
            attempt: 1,
            result: OperationResult::Successful,
            output: output.to_owned(),
            finished_at: UtcDateTime(Utc::now()),
            outcome: Outcome::Succeeded,
            labels: Labels::default(),
            parent_id: None,
        }
    }

    #[test]
    fn a_result_that_fits_is_kept() {
        let output = "x".repeat(100);
        let mut result = finished(&output);
        refuse_if_too_large(&mut result, 100 + FINISH_ROW_OVERHEAD);
        assert_eq!(result.result, OperationResult::Successful);
        assert_eq!(result.outcome, Outcome::Succeeded);
        assert_eq!(result.output, output);
    }

    #[test]
    fn a_result_too_large_for_any_statement_is_a_failure_saying_so() {
        let mut result = finished(&"x".repeat(101));
        refuse_if_too_large(&mut result, 100 + FINISH_ROW_OVERHEAD);
        assert_eq!(result.result, OperationResult::Failed);
        assert_eq!(result.outcome, Outcome::Failed);
        let output: Value = serde_json::from_str(&result.output).unwrap_or_default();
        let error = output["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("the output data (101 bytes) is too large"),
            "{error}"
        );
        assert!(error.contains("max_allowed_packet"), "{error}");
    }
}
