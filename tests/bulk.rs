//! The Game/Player/Card example: `#[batch_tracked]`, bulk insert and select-back by
//! operation, with the statement counts as a contract, atomic failure and isolation between
//! concurrent operations.

use batchframework_diesel::{
    add_tracking_column, batch_tracked, bulk_insert, bulk_insert_tracked,
    bulk_insert_tracked_or_fail, bulk_insertable, BatchOperation, ContextRef, Error,
    OperationResult, Status,
};
// The library's bind limits, on its hidden path: they are not public API.
use batchframework_diesel::__private::{MYSQL_MAX_BINDS, SQLITE_MAX_BINDS};
use batchframework_tests::{migrated, per_backend, StatementCounter, TestBackend};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

diesel::table! {
    games (id) { id -> BigInt, name -> Varchar, }
}
diesel::table! {
    players (id) {
        id -> BigInt,
        game_id -> BigInt,
        name -> Varchar,
        batchoperation_id -> Nullable<BigInt>,
    }
}
diesel::table! {
    cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
}
diesel::joinable!(cards -> players (player_id));
diesel::allow_tables_to_appear_in_same_query!(games, players, cards);

#[batch_tracked]
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = players)]
pub(crate) struct NewPlayer {
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

#[batch_tracked]
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = players)]
pub(crate) struct Player {
    pub(crate) id: i64,
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

#[bulk_insertable]
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = cards)]
pub(crate) struct NewCard {
    pub(crate) player_id: i64,
    pub(crate) cardid: i32,
}

/// A borrowed row whose tracking field has another Rust name.
#[batch_tracked]
#[derive(Insertable)]
#[diesel(table_name = players)]
pub(crate) struct NamedPlayer<'a> {
    pub(crate) game_id: i64,
    pub(crate) name: &'a str,
    #[diesel(column_name = batchoperation_id)]
    pub(crate) operation: Option<i64>,
}

/// The three tables, the players' tracking column and one game.
pub(crate) fn create_tables<B: TestBackend>(conn: &mut B::Connection) {
    let id = B::ID_COLUMN;
    conn.batch_execute(&format!(
        "CREATE TABLE games (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
         CREATE TABLE players ({id}, game_id BIGINT NOT NULL REFERENCES games (id),
             name VARCHAR(100) NOT NULL);
         CREATE TABLE cards ({id}, player_id BIGINT NOT NULL REFERENCES players (id),
             cardid INT NOT NULL);
         INSERT INTO games (id, name) VALUES (1, 'chess'), (2, 'go');"
    ))
    .unwrap();
    add_tracking_column(conn, "players").unwrap();
}

pub(crate) fn new_players(game_id: i64, n: usize) -> impl Iterator<Item = NewPlayer> {
    (0..n).map(move |i| NewPlayer {
        game_id,
        name: format!("player{i}"),
        batchoperation_id: None,
    })
}

/// Rows per multi-row INSERT, and the statements the pattern adds on top of 5 for `n` players:
/// one per extra chunk, and on MySQL `LAST_INSERT_ID()` plus one `@@max_allowed_packet` read per
/// bulk insert.
fn extra_statements<B: TestBackend>(n: usize) -> usize {
    let chunks = |columns: usize, limit: usize| n.div_ceil(limit / columns).max(1) - 1;
    match B::DIALECT {
        batchframework_diesel::Dialect::Sqlite => {
            chunks(3, SQLITE_MAX_BINDS) + chunks(2, SQLITE_MAX_BINDS)
        }
        batchframework_diesel::Dialect::Mysql => {
            1 + 2 + chunks(3, MYSQL_MAX_BINDS) + chunks(2, MYSQL_MAX_BINDS)
        }
        _ => 0,
    }
}

per_backend! {
    /// The 5 steps; returns the operation.
    pub(crate) fn deal(conn: &mut Conn, n: usize) -> BatchOperation {
        let mut op = BatchOperation::create_synchronous("deal-cards")
            .context_object(&ContextRef::new("games", 1))
            .insert(conn)
            .unwrap();
        assert_eq!(bulk_insert_tracked(conn, &op, new_players(1, n)).unwrap(), n);
        let created: Vec<Player> = Player::in_batch(&op)
            .select(Player::as_select())
            .order(players::id)
            .load(conn)
            .unwrap();
        let cards = created.iter().map(|player| NewCard {
            player_id: player.id,
            cardid: player.name["player".len()..].parse().unwrap(),
        });
        assert_eq!(bulk_insert(conn, cards).unwrap(), n);
        op.finish(conn).unwrap();
        op
    }

    fn five_queries(n: usize) {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let counter = StatementCounter::install(&mut conn);
        let op = deal(&mut conn, n);
        let statements = counter.take();
        assert_eq!(
            statements.len(),
            5 + extra_statements::<B>(n),
            "{:#?}",
            statements.iter().map(|s| s.chars().take(80).collect::<String>()).collect::<Vec<_>>()
        );

        // Every card points at the player it was made for.
        let pairs: Vec<(String, i32)> = cards::table
            .inner_join(players::table)
            .select((players::name, cards::cardid))
            .load(&mut conn)
            .unwrap();
        assert_eq!(pairs.len(), n);
        for (name, cardid) in pairs {
            assert_eq!(name, format!("player{cardid}"));
        }
        assert_eq!(Player::in_batch(&op).count().get_result::<i64>(&mut conn).unwrap(), n as i64);
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!((stored.status(), stored.result()), (Status::Finished, OperationResult::Successful));
    }

    #[test]
    fn the_pattern_takes_5_statements_for_1000_players() {
        five_queries(1_000);
    }

    #[test]
    fn the_pattern_takes_5_statements_plus_chunks_for_25000_players() {
        five_queries(25_000);
    }

    /// A failure in a later chunk leaves none of the batch behind and returns the database's
    /// error; the connection stays usable.
    #[test]
    fn a_failing_row_rolls_back_the_whole_batch() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
        // Row 20,001 of 25,000 names a game that does not exist.
        let rows = new_players(1, 25_000).enumerate().map(|(i, mut row)| {
            if i == 20_000 {
                row.game_id = 999;
            }
            row
        });
        let error = bulk_insert_tracked(&mut conn, &op, rows).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Database(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _
                ))
            ),
            "{error:?}"
        );
        assert_eq!(players::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        // Still usable, and a good batch goes in.
        assert_eq!(bulk_insert_tracked(&mut conn, &op, new_players(1, 10)).unwrap(), 10);
    }

    /// Inside the caller's transaction the batch is a savepoint: its failure leaves the caller's
    /// earlier work in place and the transaction usable.
    #[test]
    fn inside_a_transaction_a_failed_batch_rolls_back_only_itself() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
        conn.transaction::<_, Error, _>(|conn| {
            bulk_insert_tracked(conn, &op, new_players(1, 5))?;
            let bad = new_players(999, 5);
            assert!(bulk_insert_tracked(conn, &op, bad).is_err());
            bulk_insert_tracked(conn, &op, new_players(2, 3))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(Player::in_batch(&op).count().get_result::<i64>(&mut conn).unwrap(), 8);
    }

    /// The failure record is a separate, committed write: it survives the batch's rollback.
    #[test]
    fn a_failed_bulk_step_is_recorded_on_the_operation() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let mut op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
        let error = bulk_insert_tracked_or_fail(&mut conn, &mut op, new_players(999, 3)).unwrap_err();
        assert!(matches!(error, Error::Database(_)), "{error:?}");
        let stored = BatchOperation::find(&mut conn, op.id()).unwrap();
        assert_eq!((stored.status(), stored.result()), (Status::Finished, OperationResult::Failed));
        let output: serde_json::Value = stored.output_data().unwrap().unwrap();
        assert_eq!(output["error"], serde_json::json!(error.to_string()));
        assert_eq!(players::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    }

    /// Two operations inserting into the same table at once each select back only their own rows.
    #[test]
    fn concurrent_operations_never_see_each_others_rows() {
        let (db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = [(1_i64, 3_000_usize), (2, 2_000)]
            .into_iter()
            .map(|(game, n)| {
                let mut conn = B::connect(&db);
                let barrier = std::sync::Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
                    barrier.wait();
                    bulk_insert_tracked(&mut conn, &op, new_players(game, n)).unwrap();
                    let mine: Vec<Player> = Player::in_batch(&op)
                        .select(Player::as_select())
                        .load(&mut conn)
                        .unwrap();
                    assert_eq!(mine.len(), n);
                    assert!(mine.iter().all(|p| p.game_id == game && p.batchoperation_id == Some(op.id())));
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(players::table.count().get_result::<i64>(&mut conn).unwrap(), 5_000);
    }

    #[test]
    fn an_empty_batch_runs_no_statement() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let counter = StatementCounter::install(&mut conn);
        assert_eq!(bulk_insert(&mut conn, Vec::<NewCard>::new()).unwrap(), 0);
        assert_eq!(counter.take(), Vec::<String>::new());
    }

    /// Rows may borrow, and the tracking field may have another Rust name.
    #[test]
    fn borrowed_rows_with_a_renamed_tracking_field_are_tagged() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
        let names = ["ann", "bob", "cy"];
        let rows = names.iter().map(|name| NamedPlayer { game_id: 1, name, operation: None });
        assert_eq!(bulk_insert_tracked(&mut conn, &op, rows).unwrap(), 3);
        let found: Vec<String> = Player::in_batch(&op)
            .select(players::name)
            .order(players::name)
            .load(&mut conn)
            .unwrap();
        assert_eq!(found, names);
    }

    /// Inside a caller's transaction the failure record could not survive a rollback, so the
    /// convenience refuses to start.
    #[test]
    fn recording_a_failure_is_refused_inside_a_transaction() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let mut op = BatchOperation::create_synchronous("deal").insert(&mut conn).unwrap();
        let before = op.clone();
        let error = conn
            .transaction::<Error, Error, _>(|conn| {
                Ok(bulk_insert_tracked_or_fail(conn, &mut op, new_players(1, 3)).unwrap_err())
            })
            .unwrap();
        assert!(matches!(error, Error::InsideTransaction), "{error:?}");
        assert_eq!(op, before);
        assert_eq!(players::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    }
}
