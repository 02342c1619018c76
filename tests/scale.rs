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
}
