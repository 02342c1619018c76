//! Statement counts at scale, where the backend makes them independent of N.

#[cfg(feature = "postgres")]
mod postgres {
    use crate::bulk::{create_tables, postgres::deal};
    use batchframework_tests::{migrated, Postgres, StatementCounter};

    /// PostgreSQL's COPY keeps the pattern at exactly 5 statements whatever N is.
    #[test]
    fn the_pattern_takes_5_statements_for_100000_players() {
        let (_db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        let counter = StatementCounter::install(&mut conn);
        deal(&mut conn, 100_000);
        assert_eq!(counter.take().len(), 5);
    }

    /// The select-back streams in PostgreSQL's row-by-row mode: children are built as the
    /// parents arrive, in the same 5 statements, and every child points at its own parent.
    #[test]
    fn the_select_back_streams_row_by_row() {
        use crate::bulk::{new_players, players, NewCard, Player};
        use batchframework_diesel::{bulk_insert, bulk_insert_tracked, BatchOperation};
        use diesel::pg::PgRowByRowLoadingMode;
        use diesel::prelude::*;

        let (_db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        let counter = StatementCounter::install(&mut conn);
        let mut op = BatchOperation::create_synchronous("deal")
            .insert(&mut conn)
            .unwrap();
        bulk_insert_tracked(&mut conn, &op, new_players(1, 20_000)).unwrap();
        let mut rows = 0;
        let cards: Vec<NewCard> = Player::in_batch(&op)
            .select(Player::as_select())
            .order(players::id)
            .load_iter::<Player, PgRowByRowLoadingMode>(&mut conn)
            .unwrap()
            .map(|player| {
                let player = player.unwrap();
                rows += 1;
                NewCard {
                    player_id: player.id,
                    cardid: player.name["player".len()..].parse().unwrap(),
                }
            })
            .collect();
        assert_eq!(rows, 20_000);
        assert_eq!(bulk_insert(&mut conn, cards).unwrap(), 20_000);
        op.finish(&mut conn).unwrap();
        assert_eq!(counter.take().len(), 5);
        let mismatched: i64 = crate::bulk::cards::table
            .inner_join(players::table)
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "players.name <> 'player' || cards.cardid",
            ))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(mismatched, 0);
    }
}
