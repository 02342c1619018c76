//! A lifecycle step inside the caller's transaction, racing another connection. PostgreSQL's
//! READ COMMITTED read-back sees the winner's status; MySQL/MariaDB's REPEATABLE READ snapshot
//! does not, and the step reports a conflict to retry instead of a contradictory status; nor
//! does PostgreSQL's REPEATABLE READ, whose UPDATE fails with a serialization failure that the
//! step reports as the same conflict.
//! (SQLite serialises writers, so the race cannot happen inside a write transaction there.)

use batchframework_diesel::{BatchOperation, Error, Status};
use batchframework_tests::{migrated, TestBackend};
use diesel::Connection;

/// Starts `op` from another connection after this transaction has read it, then tries to start
/// it inside the transaction; returns that attempt's error.
fn start_inside_a_stale_transaction<B: TestBackend>() -> Error {
    let (db, mut conn) = migrated::<B>();
    start_inside_a_stale::<B>(&db, &mut conn, |conn, body| conn.transaction(body))
}

/// [`start_inside_a_stale_transaction`] in a transaction that `begin` opens around `body`.
fn start_inside_a_stale<B: TestBackend>(
    db: &batchframework_tests::TestDatabase,
    conn: &mut B::Connection,
    begin: impl FnOnce(
        &mut B::Connection,
        &mut dyn FnMut(&mut B::Connection) -> Result<Error, Error>,
    ) -> Result<Error, Error>,
) -> Error {
    let op = BatchOperation::create_asynchronous("job")
        .insert(conn)
        .unwrap();
    let mut other = B::connect(db);
    let error = begin(conn, &mut |conn| {
        let mut mine = BatchOperation::find(conn, op.id())?;
        let mut theirs = op.clone();
        theirs.mark_as_running(&mut other)?;
        let error = mine.mark_as_running(conn).unwrap_err();
        assert_eq!(
            mine.status(),
            Status::Unprocessed,
            "the struct is unchanged"
        );
        Ok(error)
    })
    .unwrap();
    assert_eq!(
        BatchOperation::find(conn, op.id()).unwrap().status(),
        Status::Running
    );
    error
}

/// The step was refused as a conflict to retry, the operation still unprocessed in its eyes.
#[allow(dead_code)] // not with every backend feature
fn assert_conflict(error: &Error) {
    assert!(
        matches!(
            error,
            Error::Conflict {
                expected: Status::Unprocessed,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("retry"), "{error}");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    #[test]
    fn a_step_in_a_read_committed_transaction_reports_the_winners_status() {
        let error = start_inside_a_stale_transaction::<batchframework_tests::Postgres>();
        assert!(
            matches!(
                error,
                Error::IllegalTransition {
                    actual: Status::Running,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_step_in_a_repeatable_read_transaction_reports_a_conflict() {
        type B = batchframework_tests::Postgres;
        let (db, mut conn) = migrated::<B>();
        let error = start_inside_a_stale::<B>(&db, &mut conn, |conn, body| {
            conn.build_transaction().repeatable_read().run(body)
        });
        assert_conflict(&error);
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    #[test]
    fn a_step_in_a_repeatable_read_transaction_reports_a_conflict() {
        let error = start_inside_a_stale_transaction::<batchframework_tests::Mysql>();
        assert_conflict(&error);
    }
}
