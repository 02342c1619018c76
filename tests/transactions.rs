//! A lifecycle step inside the caller's transaction, racing another connection. PostgreSQL's
//! READ COMMITTED read-back sees the winner's status; MySQL/MariaDB's REPEATABLE READ snapshot
//! does not, and the step reports a conflict to retry instead of a contradictory status.
//! (SQLite serialises writers, so the race cannot happen inside a write transaction there.)

use batchframework_diesel::{BatchOperation, Error, Status};
use batchframework_tests::{migrated, TestBackend};
use diesel::Connection;

/// Starts `op` from another connection after this transaction has read it, then tries to start
/// it inside the transaction; returns that attempt's error.
fn start_inside_a_stale_transaction<B: TestBackend>() -> Error {
    let (db, mut conn) = migrated::<B>();
    let op = BatchOperation::create_asynchronous("job")
        .insert(&mut conn)
        .unwrap();
    let mut other = B::connect(&db);
    let error = conn
        .transaction::<_, Error, _>(|conn| {
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
        BatchOperation::find(&mut conn, op.id()).unwrap().status(),
        Status::Running
    );
    error
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
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    #[test]
    fn a_step_in_a_repeatable_read_transaction_reports_a_conflict() {
        let error = start_inside_a_stale_transaction::<batchframework_tests::Mysql>();
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
}
