//! Running a step again when the database chose it as a deadlock victim.
//!
//! InnoDB (MySQL/MariaDB) breaks a lock cycle by rolling back one of the transactions in it,
//! even single-statement ones in autocommit: a worker's claim locks an operation's index entry
//! and then its row, while a `DELETE` of pending work locks the row and then the index entries it
//! removes. The victim changed nothing, so running it again is safe — unless it was part of a
//! caller's transaction, which the database rolled back with it and only the caller can redo.

use std::time::Duration;

use diesel::connection::{Connection, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::QueryResult;

/// How many times a deadlock victim is run again before its error is returned.
const RETRIES: u64 = 10;

/// Runs `step` again (up to [`RETRIES`] times, with a short growing pause) while the database
/// refuses it as a deadlock or serialization victim. For steps that are whole transactions of
/// their own.
pub(crate) fn retry_on_deadlock<T>(mut step: impl FnMut() -> QueryResult<T>) -> QueryResult<T> {
    let mut tries = 0;
    loop {
        match step() {
            Err(error) if is_deadlock_victim(&error) && tries < RETRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5 * tries));
            }
            other => return other,
        }
    }
}

/// Whether the database refused a statement to break a deadlock or a serialization conflict:
/// what Diesel reports as a serialization failure (MySQL/MariaDB's deadlocks, PostgreSQL's
/// SQLSTATE 40001), and PostgreSQL's deadlock (SQLSTATE 40P01), which Diesel leaves unclassified
/// and which is told by its message.
fn is_deadlock_victim(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().starts_with("deadlock detected")
        }
        _ => false,
    }
}

/// Runs `step` on `conn`, again if it was a deadlock victim and `conn` is not inside a
/// transaction (where the victim's rollback took the caller's earlier statements with it, so
/// the error is the caller's to handle).
pub(crate) fn retry_outside_transaction<C: Connection, T>(
    conn: &mut C,
    mut step: impl FnMut(&mut C) -> QueryResult<T>,
) -> QueryResult<T> {
    if in_transaction(conn) {
        step(conn)
    } else {
        retry_on_deadlock(|| step(conn))
    }
}

/// Whether `conn` is inside a transaction (or its state is unknown, which counts as inside).
fn in_transaction<C: Connection>(conn: &mut C) -> bool {
    C::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_or(true, |depth| depth.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn deadlocks_of_every_backend_are_retried_and_nothing_else() {
        let serialization = database_error(DatabaseErrorKind::SerializationFailure, "1213");
        let postgres = database_error(DatabaseErrorKind::Unknown, "deadlock detected");
        let other = database_error(DatabaseErrorKind::Unknown, "syntax error");
        let unique = database_error(DatabaseErrorKind::UniqueViolation, "deadlock detected");
        assert!(is_deadlock_victim(&serialization));
        assert!(is_deadlock_victim(&postgres));
        assert!(!is_deadlock_victim(&other));
        assert!(!is_deadlock_victim(&unique));
        assert!(!is_deadlock_victim(&DieselError::NotFound));

        let mut tries = 0;
        let outcome = retry_on_deadlock(|| {
            tries += 1;
            if tries < 3 {
                Err(database_error(
                    DatabaseErrorKind::Unknown,
                    "deadlock detected",
                ))
            } else {
                Ok(tries)
            }
        });
        assert!(matches!(outcome, Ok(3)));
    }
}
