//! MySQL/MariaDB: a batch whose rows add up to more than `max_allowed_packet` is split by size,
//! and a single row too large for any statement is refused before it is sent, so the connection
//! survives either way (the server drops a connection that sends an oversized packet).

#[cfg(feature = "mysql")]
mod mysql {
    use batchframework_diesel::{bulk_insert, bulk_insertable, Error};
    use batchframework_tests::{migrated, Mysql, StatementCounter, TestBackend};
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    diesel::table! {
        notes (id) { id -> BigInt, body -> Text, }
    }

    #[bulk_insertable]
    #[derive(Insertable)]
    #[diesel(table_name = notes)]
    struct NewNote {
        body: String,
    }

    fn packet_bytes(conn: &mut MysqlConnection) -> usize {
        let packet: u64 = diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Unsigned<diesel::sql_types::BigInt>,
        >("@@max_allowed_packet"))
        .get_result(conn)
        .unwrap();
        packet as usize
    }

    /// A migrated database with a `notes` table, and the server's `max_allowed_packet`.
    fn with_notes_table() -> (batchframework_tests::TestDatabase, MysqlConnection, usize) {
        let (db, mut conn) = migrated::<Mysql>();
        conn.batch_execute(&format!(
            "CREATE TABLE notes ({}, body LONGTEXT NOT NULL)",
            Mysql::ID_COLUMN
        ))
        .unwrap();
        let packet = packet_bytes(&mut conn);
        (db, conn, packet)
    }

    #[test]
    fn wide_rows_are_split_under_max_allowed_packet() {
        let (_db, mut conn, packet) = with_notes_table();
        // 2.5 packets' worth of rows, each a twentieth of a packet.
        let row_bytes = packet / 20;
        let rows = 50;
        let counter = StatementCounter::install(&mut conn);
        let inserted = bulk_insert(
            &mut conn,
            (0..rows).map(|i| NewNote {
                body: format!("{i:08}").repeat(row_bytes / 8),
            }),
        )
        .unwrap();
        assert_eq!(inserted, rows);
        let inserts = counter
            .take()
            .iter()
            .filter(|s| s.starts_with("INSERT"))
            .count();
        assert!(
            inserts >= 4,
            "{inserts} statements for {} bytes",
            rows * row_bytes
        );
        let count: i64 = notes::table.count().get_result(&mut conn).unwrap();
        assert_eq!(count, rows as i64);
    }

    #[test]
    fn a_row_larger_than_any_statement_is_refused_and_the_connection_survives() {
        let (_db, mut conn, packet) = with_notes_table();
        let rows = vec![
            NewNote {
                body: "small".into(),
            },
            NewNote {
                body: "x".repeat(packet + 1),
            },
        ];
        let error = bulk_insert(&mut conn, rows).unwrap_err();
        assert!(matches!(error, Error::RowTooLarge { .. }), "{error:?}");
        assert!(error.to_string().contains("max_allowed_packet"), "{error}");
        // Nothing of the batch is left, and the connection still works.
        let count: i64 = notes::table.count().get_result(&mut conn).unwrap();
        assert_eq!(count, 0);
    }
}
