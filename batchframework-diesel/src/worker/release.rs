//! Giving a claimed operation back to the queue: the one place the worker builds the change
//! that releases a claim, and the one function that writes it, fenced.
//!
//! Two things release a claim, both on the worker thread that holds it: a failed attempt with
//! attempts left (a retry, counted), and, when the worker stops, an operation claimed but not
//! started (its attempt uncounted). Final results take the other path, through the keeper's
//! group commit (see the `keeper` module). Releases are not group-committed, for three reasons:
//!
//! * the keeper's grouped `UPDATE` writes only a finish's columns; a release also clears the
//!   holder and heartbeat and sets `attempts` and `run_after`, a statement of its own;
//! * `run_until_idle` drains what is due: a retry due at once (no backoff) must be claimable by
//!   the thread's very next claim, which it would not be while still `running` in the keeper's
//!   queue, and the drain would end with the retry left behind;
//! * on PostgreSQL a release's trigger announces the retry to idle workers as it commits.

use crate::backend::worker::statements::ClaimedChange;
use crate::backend::{UtcDateTime, WorkerConnection};
use crate::operation::BatchOperation;
use crate::status::{OperationResult, Status};

use super::shared::{Outcome, Shared};
use super::Worker;
use crate::backend::retry_on_deadlock;

/// A claimed operation going back to `unprocessed`, unlocked, to be claimed again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Release<'a> {
    /// The output it keeps until the next attempt.
    pub(super) output_data_json: &'a str,
    /// When it may be claimed again (`None`: at once).
    pub(super) run_after: Option<UtcDateTime>,
    /// The attempts it counts from now on.
    pub(super) attempts: i32,
}

impl<'a> Release<'a> {
    /// After a failed attempt with attempts left: the attempt counts, and the next one waits
    /// for the backoff.
    pub(super) fn retry(attempts: i32, output_data_json: &'a str, run_after: UtcDateTime) -> Self {
        Release {
            output_data_json,
            run_after: Some(run_after),
            attempts,
        }
    }

    /// An operation claimed but never started, as if it had not been claimed: the attempt is
    /// not counted, and its output and `run_after` stay what they were before the claim.
    pub(super) fn unstarted(operation: &'a BatchOperation) -> Self {
        Release {
            output_data_json: operation.output_data_json(),
            run_after: operation.run_after().map(UtcDateTime),
            attempts: operation.attempts() - 1,
        }
    }

    /// The columns written: everything a claim set is undone.
    pub(super) fn change(&self) -> ClaimedChange<'a> {
        ClaimedChange {
            status: Status::Unprocessed,
            result: OperationResult::NotAvailable,
            finished_datetime: None,
            output_data_json: self.output_data_json,
            run_after: self.run_after,
            locked_by: None,
            heartbeat_datetime: None,
            attempts: self.attempts,
        }
    }
}

impl<C> Worker<C>
where
    C: WorkerConnection,
{
    /// Writes `release` only if this worker still holds `operation` at the attempt it claimed
    /// (`WHERE status = 'running' AND locked_by = me AND attempts = the claimed attempt`), and
    /// lets go of the claim in `shared` whatever happened. [`Outcome::Retried`] if written,
    /// [`Outcome::Fenced`] if another worker has taken the operation over.
    pub(super) fn release(
        &self,
        conn: &mut C,
        shared: &Shared,
        operation: &BatchOperation,
        release: &Release<'_>,
    ) -> diesel::QueryResult<Outcome> {
        let (id, attempt) = (operation.id(), operation.attempts());
        let change = release.change();
        // On an error the operation stays held: the caller decides (given back later, or
        // left to its lease).
        let written = retry_on_deadlock(|| conn.change_claimed(id, attempt, &self.name, &change))?;
        shared.release(id);
        Ok(if written == 1 {
            Outcome::Retried
        } else {
            Outcome::Fenced
        })
    }
}

#[cfg(test)]
mod tests {
    //! The change a release writes, without a database.

    use chrono::{DateTime, Utc};

    use super::{Release, UtcDateTime};
    use crate::operation::BatchOperation;
    use crate::status::{OperationResult, Status};

    /// An operation as a claim leaves it: `running`, locked, its third attempt counted.
    fn claimed(run_after: Option<DateTime<Utc>>) -> BatchOperation {
        BatchOperation {
            status: Status::Running,
            output_data_json: r#"{"results":["second"]}"#.into(),
            run_after,
            attempts: 3,
            max_attempts: 5,
            locked_by: Some("me".into()),
            heartbeat_datetime: Some(Utc::now()),
            ..BatchOperation::sample()
        }
    }

    #[test]
    fn a_release_undoes_the_claim() {
        let run_after = UtcDateTime(Utc::now());
        let change = Release::retry(2, r#"{"results":[]}"#, run_after).change();
        assert_eq!(change.status, Status::Unprocessed);
        assert_eq!(change.result, OperationResult::NotAvailable);
        assert_eq!(change.finished_datetime, None);
        assert_eq!(change.locked_by, None);
        assert_eq!(change.heartbeat_datetime, None);
        assert_eq!(change.output_data_json, r#"{"results":[]}"#);
        assert_eq!(change.run_after, Some(run_after));
        assert_eq!(change.attempts, 2);
    }

    #[test]
    fn an_unstarted_release_gives_the_attempt_back() {
        let run_after = Utc::now();
        for before in [None, Some(run_after)] {
            let operation = claimed(before);
            let change = Release::unstarted(&operation).change();
            assert_eq!(change.status, Status::Unprocessed);
            assert_eq!(change.locked_by, None);
            assert_eq!(change.heartbeat_datetime, None);
            assert_eq!(change.attempts, 2);
            assert_eq!(change.output_data_json, r#"{"results":["second"]}"#);
            assert_eq!(change.run_after, before.map(UtcDateTime));
        }
    }

    #[test]
    fn the_decision_reads_the_claimed_attempt() {
        let operation = claimed(None);
        let attempt = crate::worker::attempt::Attempt::of(&operation);
        assert_eq!(attempt.attempts, 3);
        assert_eq!(attempt.max_attempts, 5);
        assert_eq!(attempt.earlier_output, r#"{"results":["second"]}"#);
    }
}
