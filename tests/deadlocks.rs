//! InnoDB breaks a lock cycle by rolling back one statement's transaction, autocommit ones
//! included. `remove_pending` racing a claim can be that victim; outside a transaction it runs
//! again and gives one of its two promised outcomes (removed, or not pending any more), never
//! the deadlock. Here the cycle is built on purpose, with a transaction heavier than the
//! `DELETE`, so that InnoDB picks the `DELETE` as its victim.

#[cfg(feature = "mysql")]
mod mysql {
    use std::time::{Duration, Instant};

    use batchframework_diesel::{BatchOperation, Error, OperationFilter, Status};
    use batchframework_tests::{migrated, Mysql, TestBackend, TestDatabase};
    use diesel::{Connection, MysqlConnection, RunQueryDsl};

    const TABLE: &str = "batchframework_batchoperation";

    #[test]
    fn remove_pending_chosen_as_deadlock_victim_runs_again() {
        let (db, first, second, removed) = race_a_claim(|conn| {
            OperationFilter::new()
                .operation_type("victim")
                .remove_pending(conn)
        });
        assert_eq!(
            removed.expect("remove_pending runs again after being the deadlock victim"),
            1,
            "only the second victim was still pending"
        );
        let mut conn = Mysql::connect(&db);
        assert_eq!(
            BatchOperation::find(&mut conn, first).unwrap().status(),
            Status::Running
        );
        assert!(BatchOperation::find(&mut conn, second).is_err());
    }

    /// Inside the caller's transaction the victim's rollback took the caller's earlier
    /// statements too: the error is returned for the caller to retry the transaction.
    #[test]
    fn inside_a_transaction_the_deadlock_is_the_callers_to_retry() {
        let (db, _, second, removed) = race_a_claim(|conn| {
            conn.transaction(|conn| {
                OperationFilter::new()
                    .operation_type("victim")
                    .remove_pending(conn)
            })
        });
        assert!(
            matches!(
                removed,
                Err(Error::RolledBack {
                    action: "remove pending operations"
                })
            ),
            "{removed:?}"
        );
        let mut conn = Mysql::connect(&db);
        let second = BatchOperation::find(&mut conn, second).unwrap();
        assert_eq!(second.status(), Status::Unprocessed, "nothing was removed");
    }

    /// Two pending "victim" operations; a transaction heavier than `remove` locks the second,
    /// `remove` runs on another connection (deleting the first, then waiting for the second),
    /// and the transaction then claims the first: a lock cycle. Returns the database, both ids
    /// and what `remove` returned.
    fn race_a_claim(
        remove: impl FnOnce(&mut MysqlConnection) -> Result<usize, Error> + Send,
    ) -> (TestDatabase, i64, i64, Result<usize, Error>) {
        let (db, mut holder) = migrated::<Mysql>();
        run(&mut holder, "CREATE TABLE ballast (id INT PRIMARY KEY)");
        let first = BatchOperation::create_asynchronous("victim")
            .insert(&mut holder)
            .unwrap()
            .id();
        let second = BatchOperation::create_asynchronous("victim")
            .insert(&mut holder)
            .unwrap()
            .id();

        // The holder's transaction writes 100 rows of another table (so InnoDB finds it the
        // costlier one to roll back) and locks the second victim.
        run(&mut holder, "START TRANSACTION");
        let rows: Vec<String> = (1..=100).map(|id| format!("({id})")).collect();
        run(
            &mut holder,
            &format!("INSERT INTO ballast (id) VALUES {}", rows.join(", ")),
        );
        run(
            &mut holder,
            &format!("SELECT id FROM {TABLE} WHERE id = {second} FOR UPDATE"),
        );

        let mut remover_conn = Mysql::connect(&db);
        let remover_id = Mysql::select_i64s(&mut remover_conn, "SELECT CONNECTION_ID() AS v")[0]
            .expect("a connection id");
        let removed = std::thread::scope(|scope| {
            let remover = scope.spawn(move || remove(&mut remover_conn));
            wait_for_a_lock_wait(&mut holder, remover_id);
            // Claims the first victim, which the DELETE holds: a cycle, and the DELETE is the
            // lighter transaction.
            run(
                &mut holder,
                &format!(
                    "UPDATE {TABLE} SET status = 'running', started_running_datetime = NOW(6) \
                     WHERE id = {first}"
                ),
            );
            run(&mut holder, "COMMIT");
            remover.join().unwrap()
        });
        (db, first, second, removed)
    }

    fn run(conn: &mut MysqlConnection, sql: &str) {
        diesel::sql_query(sql).execute(conn).unwrap();
    }

    /// Waits (bounded) until connection `waiter` waits for a row lock. (The server's other
    /// transactions, such as other tests', may wait too: only this one counts.)
    fn wait_for_a_lock_wait(conn: &mut MysqlConnection, waiter: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting = Mysql::select_i64s(
                conn,
                &format!(
                    "SELECT COUNT(*) AS v FROM information_schema.INNODB_TRX \
                     WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id = {waiter}"
                ),
            );
            if waiting != [Some(0)] {
                return;
            }
            assert!(Instant::now() < deadline, "the DELETE never waited");
            // The server refreshes INNODB_TRX only when it was last read over 0.1 s ago.
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}
