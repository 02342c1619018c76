//! The tracking column added to a user table: a real foreign key, `ON DELETE SET NULL`, indexed,
//! and removable again.

use batchframework_diesel::{add_tracking_column, tracking_column_sql, BatchOperation, Error};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use diesel::connection::SimpleConnection;

fn the_tracking_column_is_an_indexed_foreign_key_that_survives_pruning<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    conn.batch_execute("CREATE TABLE players (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL)")
        .unwrap();
    add_tracking_column(&mut conn, "players").unwrap();

    let op = BatchOperation::create_synchronous("add-players")
        .insert(&mut conn)
        .unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO players (id, name, batchoperation_id) VALUES (1, 'ann', {0}), (2, 'bob', {0}), (3, 'cy', NULL)",
        op.id()
    ))
    .unwrap();
    let tagged = B::select_i64s(
        &mut conn,
        &format!(
            "SELECT id AS v FROM players WHERE batchoperation_id = {} ORDER BY id",
            op.id()
        ),
    );
    assert_eq!(tagged, [Some(1), Some(2)]);

    // A dangling operation id is refused by the foreign key.
    let dangling = conn.batch_execute(&format!(
        "INSERT INTO players (id, name, batchoperation_id) VALUES (4, 'dan', {})",
        op.id() + 1000
    ));
    assert!(
        dangling.is_err(),
        "the foreign key accepted a missing operation"
    );

    // Pruning the operation keeps the players and clears their tag.
    conn.batch_execute(&format!(
        "DELETE FROM batchframework_batchoperation WHERE id = {}",
        op.id()
    ))
    .unwrap();
    let tags = B::select_i64s(
        &mut conn,
        "SELECT batchoperation_id AS v FROM players ORDER BY id",
    );
    assert_eq!(tags, [None, None, None]);

    // The down SQL removes the column again, and the up SQL can be re-applied after it.
    let sql = tracking_column_sql(B::DIALECT, "players").unwrap();
    conn.batch_execute(&sql.down).unwrap();
    assert!(conn
        .batch_execute("UPDATE players SET batchoperation_id = NULL")
        .is_err());
    conn.batch_execute(&sql.up).unwrap();
    let count = B::select_i64s(&mut conn, "SELECT COUNT(*) AS v FROM players");
    assert_eq!(count, [Some(3)]);
}

fn an_invalid_table_name_is_refused_before_any_sql<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let error = add_tracking_column(
        &mut conn,
        "players; DROP TABLE batchframework_batchoperation",
    )
    .unwrap_err();
    assert!(
        matches!(error, Error::InvalidIdentifier { .. }),
        "{error:?}"
    );
    // The operation table is still there: the name never reached the database.
    assert!(matches!(
        BatchOperation::find(&mut conn, 1),
        Err(Error::NotFound { id: 1 })
    ));
}

backend_tests!(
    the_tracking_column_is_an_indexed_foreign_key_that_survives_pruning,
    an_invalid_table_name_is_refused_before_any_sql,
);

/// The game_cards example's migrations carry the tracking column exactly as the library
/// generates it, so the example shows the real output.
#[test]
fn the_example_migrations_use_the_generated_tracking_column_sql() {
    use batchframework_diesel::Dialect;
    for (dialect, up, down) in [
        (
            Dialect::Postgres,
            include_str!("../examples/game_cards/migrations/postgres/2026-11-27-100000_create_game_cards/up.sql"),
            include_str!("../examples/game_cards/migrations/postgres/2026-11-27-100000_create_game_cards/down.sql"),
        ),
        (
            Dialect::Sqlite,
            include_str!("../examples/game_cards/migrations/sqlite/2026-11-27-100000_create_game_cards/up.sql"),
            include_str!("../examples/game_cards/migrations/sqlite/2026-11-27-100000_create_game_cards/down.sql"),
        ),
        (
            Dialect::Mysql,
            include_str!("../examples/game_cards/migrations/mysql/2026-11-27-100000_create_game_cards/up.sql"),
            include_str!("../examples/game_cards/migrations/mysql/2026-11-27-100000_create_game_cards/down.sql"),
        ),
    ] {
        let sql = tracking_column_sql(dialect, "players").unwrap();
        assert!(up.ends_with(&sql.up), "{dialect:?} up.sql:\n{up}\nexpected to end with:\n{}", sql.up);
        assert!(down.starts_with(&sql.down), "{dialect:?} down.sql:\n{down}\nexpected to start with:\n{}", sql.down);
    }
}
