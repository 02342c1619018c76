//! Guarded transitions under real concurrency: separate connections on separate threads.

use std::sync::{Arc, Barrier};
use std::thread;

use batchframework_diesel::{BatchOperation, Error, OperationResult, Status};
use batchframework_tests::{backend_tests, migrated, TestBackend};

const ROUNDS: usize = 25;

/// Runs `step(side, ..)` for sides 0 and 1 on two connections at once, each against its own
/// clone of `op`; returns both outcomes.
fn race<B, F>(
    db: &batchframework_tests::TestDatabase,
    op: &BatchOperation,
    step: F,
) -> Vec<Result<BatchOperation, Error>>
where
    B: TestBackend,
    F: Fn(usize, &mut BatchOperation, &mut B::Connection) -> Result<(), Error>
        + Send
        + Copy
        + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|side| {
            let mut conn = B::connect(db);
            let mut op = op.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                step(side, &mut op, &mut conn).map(|()| op)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn exactly_one_of_two_racing_mark_as_running_wins<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    for _ in 0..ROUNDS {
        let op = BatchOperation::create_asynchronous("race")
            .insert(&mut conn)
            .unwrap();
        let outcomes = race::<B, _>(&db, &op, |_, op, conn| op.mark_as_running(conn));
        let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        // The loser sees the winner's status, or, when InnoDB chose its UPDATE as the victim
        // of a deadlock between the two, a conflict to retry; never anything else.
        for outcome in &outcomes {
            if let Err(error) = outcome {
                assert!(
                    matches!(
                        error,
                        Error::IllegalTransition {
                            actual: Status::Running,
                            ..
                        } | Error::Conflict {
                            expected: Status::Unprocessed,
                            ..
                        }
                    ),
                    "{error:?}"
                );
            }
        }
        assert_eq!(
            &BatchOperation::find(&mut conn, op.id()).unwrap(),
            winners[0]
        );
    }
}

fn exactly_one_of_two_racing_finishes_wins<B: TestBackend>() {
    let (db, mut conn) = migrated::<B>();
    for _ in 0..ROUNDS {
        let op = BatchOperation::create_synchronous("race")
            .insert(&mut conn)
            .unwrap();
        // One side finishes successfully, the other as failed: the stored result is the
        // winner's, never a mix.
        let outcomes = race::<B, _>(&db, &op, |side, op, conn| match side {
            0 => op.finish(conn),
            _ => op.finish_failed(conn, &"failed side"),
        });
        let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!(&stored, winners[0]);
        assert_ne!(stored.result(), OperationResult::NotAvailable);
    }
}

backend_tests!(
    exactly_one_of_two_racing_mark_as_running_wins,
    exactly_one_of_two_racing_finishes_wins,
);
