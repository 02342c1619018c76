//! Bulk inserts fed from an iterator: every yielded row goes in with its content (over many of
//! the PostgreSQL `COPY`'s buffer flushes), rows reach PostgreSQL while the iterator still
//! yields (the batch is streamed, not collected), and a bad row late in a large batch (the
//! 600,001st) leaves none of the batch behind, returns a typed error and leaves the connection
//! usable: a constraint violation the database finds while rows are still arriving (a duplicate
//! key), one it finds only at the end of the statement (a missing parent), and a value that
//! cannot be encoded.

use batchframework_diesel::{
    add_tracking_column, batch_tracked, bulk_insert, bulk_insert_tracked, bulk_insertable,
    BatchOperation, Error,
};
use batchframework_tests::{migrated, per_backend, StatementCounter, TestBackend};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;

diesel::table! {
    games (id) { id -> BigInt, }
}
diesel::table! {
    entries (id) {
        id -> BigInt,
        game_id -> BigInt,
        seq -> BigInt,
        label -> Varchar,
        note -> Nullable<Text>,
        batchoperation_id -> Nullable<BigInt>,
    }
}

#[batch_tracked]
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = entries)]
pub(crate) struct NewEntry {
    pub(crate) game_id: i64,
    pub(crate) seq: i64,
    pub(crate) label: String,
    pub(crate) note: Option<String>,
}

/// An entry as read back: game, seq, label, note, operation.
type StoredEntry = (i64, i64, String, Option<String>, Option<i64>);

/// Where the bad row goes: the 600,001st.
const BAD_ROW: usize = 600_000;
/// Rows in a batch with a bad row: a few after it.
const BAD_BATCH: usize = BAD_ROW + 10;

/// `games` with game 1, and `entries`: unique `seq`, a foreign key to `games`, the tracking
/// column.
fn create_tables<B: TestBackend>(conn: &mut B::Connection) {
    conn.batch_execute(&format!(
        "CREATE TABLE games (id BIGINT PRIMARY KEY);
         INSERT INTO games (id) VALUES (1);
         CREATE TABLE entries ({}, game_id BIGINT NOT NULL REFERENCES games (id),
             seq BIGINT NOT NULL UNIQUE, label VARCHAR(100) NOT NULL, note TEXT NULL);",
        B::ID_COLUMN
    ))
    .unwrap();
    add_tracking_column(conn, "entries").unwrap();
}

/// Entry `i` of a batch: notes on odd rows only, so NULLs alternate with text.
fn entry(i: usize) -> NewEntry {
    NewEntry {
        game_id: 1,
        seq: i as i64 * 7,
        label: format!("entry {i} ✓"),
        note: (i % 2 == 1).then(|| format!("note {}", i * 3)),
        batchoperation_id: None,
    }
}

per_backend! {
    fn entry_count(conn: &mut Conn) -> i64 {
        entries::table.count().get_result(conn).unwrap()
    }

    /// The batch with `bad` applied to its 600,001st row fails with `expected`, leaves no row
    /// of it behind, and the connection takes the next batch.
    fn a_bad_row_late_in_the_batch_leaves_nothing(bad: fn(&mut NewEntry), expected: DatabaseErrorKind) {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let op = BatchOperation::create_synchronous("stream").insert(&mut conn).unwrap();
        let rows = (0..BAD_BATCH).map(|i| {
            let mut row = entry(i);
            if i == BAD_ROW {
                bad(&mut row);
            }
            row
        });
        let error = bulk_insert_tracked(&mut conn, &op, rows).unwrap_err();
        assert!(
            matches!(&error, Error::Database(diesel::result::Error::DatabaseError(kind, _)) if *kind == expected),
            "expected a {expected:?}, got {error:?}"
        );
        assert_eq!(entry_count(&mut conn), 0);
        assert_eq!(NewEntry::in_batch(&op).count().get_result::<i64>(&mut conn).unwrap(), 0);
        // Still usable: a good batch goes in.
        assert_eq!(bulk_insert_tracked(&mut conn, &op, (0..10).map(entry)).unwrap(), 10);
        assert_eq!(entry_count(&mut conn), 10);
    }

    /// 150,000 rows (about 7 MB: on PostgreSQL a hundred flushes of the COPY's buffer) go in
    /// exactly as yielded, tagged with the operation; on PostgreSQL as one statement.
    #[test]
    fn every_yielded_row_goes_in_as_yielded() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let op = BatchOperation::create_synchronous("stream").insert(&mut conn).unwrap();
        let n = 150_000;
        let counter = StatementCounter::install(&mut conn);
        assert_eq!(bulk_insert_tracked(&mut conn, &op, (0..n).map(entry)).unwrap(), n);
        let statements = counter.take();
        if B::NAME == "postgres" {
            assert_eq!(statements.len(), 1, "{statements:?}");
            assert!(statements[0].starts_with("COPY"), "{statements:?}");
        }
        let stored: Vec<StoredEntry> = entries::table
            .select((entries::game_id, entries::seq, entries::label, entries::note, entries::batchoperation_id))
            .order(entries::seq)
            .load(&mut conn)
            .unwrap();
        assert_eq!(stored.len(), n);
        for (i, (game_id, seq, label, note, operation)) in stored.into_iter().enumerate() {
            let expected = entry(i);
            assert_eq!(
                (game_id, seq, label, note, operation),
                (expected.game_id, expected.seq, expected.label, expected.note, Some(op.id())),
                "row {i}"
            );
        }
    }

    /// A duplicate key in row 600,001: the database refuses it while rows are still arriving.
    #[test]
    fn a_duplicate_key_in_row_600001_rolls_back_the_whole_batch() {
        a_bad_row_late_in_the_batch_leaves_nothing(|row| row.seq = 0, DatabaseErrorKind::UniqueViolation);
    }

    /// A missing parent in row 600,001: PostgreSQL checks foreign keys only once every row of
    /// the statement is in.
    #[test]
    fn a_missing_parent_in_row_600001_rolls_back_the_whole_batch() {
        a_bad_row_late_in_the_batch_leaves_nothing(|row| row.game_id = 999, DatabaseErrorKind::ForeignKeyViolation);
    }
}

/// PostgreSQL: the streamed `COPY`, what it encodes itself, and what it leaves to Diesel.
#[cfg(feature = "postgres")]
mod postgres_copy {
    use std::borrow::Cow;
    use std::time::{Duration, Instant};

    use batchframework_diesel::__private::{copy_rows, CopyField, CopyRow, EncodeError};
    use batchframework_tests::Postgres;
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    use diesel::backend::Backend;
    use diesel::serialize::{Output, ToSql};
    use diesel::sql_types::BigInt;

    use super::*;

    /// A value of a field type the library has no encoding of: its own `ToSql`, which refuses
    /// negative numbers.
    #[derive(Debug, Clone, Copy, diesel::expression::AsExpression)]
    #[diesel(sql_type = BigInt)]
    pub(crate) struct Checked(i64);

    // For every backend: the row type gets a bulk insert for each one the library has.
    impl<DB: Backend> ToSql<BigInt, DB> for Checked
    where
        i64: ToSql<BigInt, DB>,
    {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> diesel::serialize::Result {
            if self.0 < 0 {
                return Err(format!("Checked({}) is negative", self.0).into());
            }
            self.0.to_sql(out)
        }
    }

    #[batch_tracked]
    #[derive(Debug, Clone, Insertable)]
    #[diesel(table_name = entries)]
    pub(crate) struct CheckedEntry {
        pub(crate) game_id: i64,
        pub(crate) seq: Checked,
        pub(crate) label: String,
    }

    diesel::table! {
        /// One column of every SQL type the library encodes itself (its twin `typed_reference`
        /// is filled by Diesel's own encoding).
        typed (id) {
            id -> BigInt,
            flag -> Bool,
            small -> SmallInt,
            int -> Integer,
            big -> BigInt,
            real -> Float,
            double -> Double,
            label -> Text,
            tag -> Text,
            maybe_text -> Nullable<Text>,
            maybe_int -> Nullable<Integer>,
            plain_into_nullable -> Nullable<BigInt>,
            bytes -> Binary,
            at -> Timestamp,
            day -> Date,
            time_of_day -> Time,
        }
    }
    diesel::table! {
        typed_reference (id) {
            id -> BigInt,
            flag -> Bool,
            small -> SmallInt,
            int -> Integer,
            big -> BigInt,
            real -> Float,
            double -> Double,
            label -> Text,
            tag -> Text,
            maybe_text -> Nullable<Text>,
            maybe_int -> Nullable<Integer>,
            plain_into_nullable -> Nullable<BigInt>,
            bytes -> Binary,
            at -> Timestamp,
            day -> Date,
            time_of_day -> Time,
        }
    }

    /// Every encoded type, borrowed and owned; with the same fields for Diesel's own `COPY`.
    macro_rules! typed_row {
        ($(#[$before:meta])* $name:ident, $table:ident $(, #[$after:meta])*) => {
            $(#[$before])*
            #[derive(Debug, Clone, Insertable)]
            #[diesel(table_name = $table)]
            $(#[$after])*
            pub(crate) struct $name<'a> {
                pub(crate) id: i64,
                pub(crate) flag: bool,
                pub(crate) small: i16,
                pub(crate) int: i32,
                pub(crate) big: i64,
                pub(crate) real: f32,
                pub(crate) double: f64,
                pub(crate) label: &'a str,
                pub(crate) tag: Cow<'a, str>,
                pub(crate) maybe_text: Option<String>,
                pub(crate) maybe_int: Option<i32>,
                pub(crate) plain_into_nullable: i64,
                pub(crate) bytes: Vec<u8>,
                pub(crate) at: NaiveDateTime,
                pub(crate) day: NaiveDate,
                pub(crate) time_of_day: NaiveTime,
            }
        };
    }
    typed_row!(
        #[bulk_insertable]
        TypedRow,
        typed
    );
    typed_row!(ReferenceRow, typed_reference, #[diesel(treat_none_as_default_value = false)]);

    const TYPED_COLUMNS: &str =
        "flag BOOLEAN NOT NULL, small SMALLINT NOT NULL, int INTEGER NOT NULL,
        big BIGINT NOT NULL, real REAL NOT NULL, double DOUBLE PRECISION NOT NULL,
        label TEXT NOT NULL, tag TEXT NOT NULL, maybe_text TEXT, maybe_int INTEGER,
        plain_into_nullable BIGINT, bytes BYTEA NOT NULL, at TIMESTAMP NOT NULL,
        day DATE NOT NULL, time_of_day TIME NOT NULL";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// One row's values: flag, small, int, big, real, double, text, bytes, timestamp, date,
    /// time of day.
    type TypedValues = (
        bool,
        i16,
        i32,
        i64,
        f32,
        f64,
        String,
        Vec<u8>,
        NaiveDateTime,
        NaiveDate,
        NaiveTime,
    );

    /// Row `i`, cycling through edge values of every type.
    fn typed_values(i: usize) -> TypedValues {
        let k = i % 6;
        let small = [i16::MIN, -1, 0, 1, i16::MAX, 12_345][k];
        let int = [i32::MIN, -1, 0, 1, i32::MAX, 123_456_789][k];
        let big = [i64::MIN, -1, 0, 1, i64::MAX, 1 << 40][k];
        let real = [f32::NEG_INFINITY, -0.0, 0.0, 1.5, f32::MAX, f32::NAN][k];
        let double = [
            f64::INFINITY,
            -1e-300,
            0.0,
            std::f64::consts::PI,
            f64::MIN,
            f64::NAN,
        ][k];
        let text = [
            "",
            "plain",
            "ünïcødé ✓ 😀",
            "quote ' and \\ backslash",
            "tab\tnewline\n",
            "x",
        ][k]
            .repeat(1 + i % 3);
        let bytes = [
            vec![],
            vec![0],
            vec![0, 255, 10, 13],
            vec![1; 300],
            b"\\x00".to_vec(),
            vec![7],
        ][k]
            .clone();
        let day = [
            date(1, 1, 1),
            date(1999, 12, 31),
            date(2000, 1, 1),
            date(2000, 1, 2),
            date(2262, 4, 11),
            date(9999, 12, 31),
        ][k];
        let time = [
            NaiveTime::MIN,
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap(),
            NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            NaiveTime::from_hms_micro_opt(0, 0, 0, 1).unwrap(),
            NaiveTime::from_hms_micro_opt(13, 14, 15, 161_718).unwrap(),
            NaiveTime::from_hms_opt(6, 30, 0).unwrap(),
        ][k];
        let at = day.and_time(time);
        (
            i % 2 == 0,
            small,
            int,
            big,
            real,
            double,
            text,
            bytes,
            at,
            day,
            time,
        )
    }

    /// The library's stream holds what Diesel's own encoding holds, for every type it encodes
    /// and their edge values; a row of those types streams, one with a type of its own does not.
    #[test]
    fn every_encoded_type_is_stored_as_diesel_stores_it() {
        let (_db, mut conn) = migrated::<Postgres>();
        conn.batch_execute(&format!(
            "CREATE TABLE typed (id BIGINT PRIMARY KEY, {TYPED_COLUMNS});
             CREATE TABLE typed_reference (id BIGINT PRIMARY KEY, {TYPED_COLUMNS});"
        ))
        .unwrap();
        let n = 3_000;
        let values: Vec<_> = (0..n).map(typed_values).collect();
        macro_rules! rows {
            ($row:ident) => {
                values.iter().enumerate().map(|(i, v)| $row {
                    id: i as i64,
                    flag: v.0,
                    small: v.1,
                    int: v.2,
                    big: v.3,
                    real: v.4,
                    double: v.5,
                    label: &v.6,
                    tag: if i % 2 == 0 {
                        Cow::Borrowed(v.6.as_str())
                    } else {
                        Cow::Owned(v.6.to_uppercase())
                    },
                    maybe_text: (i % 3 != 0).then(|| v.6.clone()),
                    maybe_int: (i % 4 != 0).then_some(v.2),
                    plain_into_nullable: v.3,
                    bytes: v.7.clone(),
                    at: v.8,
                    day: v.9,
                    time_of_day: v.10,
                })
            };
        }
        let first = rows!(TypedRow).next().unwrap();
        assert!(
            first.streams(),
            "a row of types the library encodes streams"
        );
        assert_eq!(bulk_insert(&mut conn, rows!(TypedRow)).unwrap(), n);
        let reference: Vec<ReferenceRow<'_>> = rows!(ReferenceRow).collect();
        diesel::copy_from(typed_reference::table)
            .from_insertable(reference)
            .execute(&mut conn)
            .unwrap();
        // Row by row, column by column: no difference either way (NaN equals NaN here).
        let differences = Postgres::select_i64s(
            &mut conn,
            "SELECT COUNT(*) AS v FROM ((SELECT * FROM typed EXCEPT SELECT * FROM typed_reference)
             UNION ALL (SELECT * FROM typed_reference EXCEPT SELECT * FROM typed)) d",
        );
        assert_eq!(differences, vec![Some(0)]);
        assert_eq!(
            Postgres::select_i64s(&mut conn, "SELECT COUNT(*) AS v FROM typed"),
            vec![Some(n as i64)]
        );

        let checked = CheckedEntry {
            game_id: 1,
            seq: Checked(1),
            label: String::new(),
            batchoperation_id: None,
        };
        assert!(
            !checked.streams(),
            "a field type of its own goes through Diesel's encoding"
        );
    }

    diesel::table! {
        zoned (id) { id -> BigInt, at -> Timestamptz, maybe_at -> Nullable<Timestamptz>, }
    }

    /// A row with `TIMESTAMPTZ` columns, PostgreSQL's alone: the macros generate a bulk insert
    /// for every backend the library was built with (all three here), so this is what they
    /// generate for PostgreSQL, written out.
    struct Zoned {
        id: i64,
        at: DateTime<Utc>,
        maybe_at: Option<DateTime<Utc>>,
    }

    #[allow(clippy::needless_borrow)]
    impl CopyRow for Zoned {
        const FIELDS: i16 = 3;

        fn streams(&self) -> bool {
            true
        }

        fn write_fields(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
            use batchframework_diesel::__private::KnownCopy as _;
            use diesel::sql_types::{Nullable, Timestamptz};
            (&&CopyField::<BigInt, _>::new(&self.id)).write_field(out)?;
            (&&CopyField::<Timestamptz, _>::new(&self.at)).write_field(out)?;
            (&&CopyField::<Nullable<Timestamptz>, _>::new(&self.maybe_at)).write_field(out)
        }
    }

    /// `DateTime<Utc>` into `TIMESTAMPTZ`, as Diesel reads it back, whatever the session's time
    /// zone.
    #[test]
    fn instants_are_stored_as_diesel_reads_them() {
        let (_db, mut conn) = migrated::<Postgres>();
        Postgres::set_session_time_zone(&mut conn);
        conn.batch_execute("CREATE TABLE zoned (id BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, maybe_at TIMESTAMPTZ)")
            .unwrap();
        let rows: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = (0..2_000)
            .map(|i| {
                let (.., at, _, _) = typed_values(i);
                let at = at.and_utc();
                (
                    i as i64,
                    at,
                    (i % 3 != 0).then(|| at + chrono::Duration::microseconds(i as i64)),
                )
            })
            .collect();
        let copied = copy_rows(
            &mut conn,
            zoned::table,
            (zoned::id, zoned::at, zoned::maybe_at),
            rows.iter()
                .map(|&(id, at, maybe_at)| Zoned { id, at, maybe_at }),
            |_, _| unreachable!("every row streams"),
        )
        .unwrap();
        assert_eq!(copied, rows.len());
        let stored: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> =
            zoned::table.order(zoned::id).load(&mut conn).unwrap();
        assert_eq!(stored, rows);
    }

    /// The rows are sent as the iterator yields them: while it is still yielding, the server
    /// has already copied some (PostgreSQL's `pg_stat_progress_copy`, read from another
    /// connection). A collected batch would not have started its `COPY` yet.
    #[test]
    fn rows_reach_the_server_while_the_iterator_still_yields() {
        let (db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        let pid =
            Postgres::select_i64s(&mut conn, "SELECT pg_backend_pid()::BIGINT AS v")[0].unwrap();
        let mut observer = Postgres::connect(&db);
        let n = 200_000;
        let mut seen = None;
        let rows = (0..n).map(|i| {
            if i == 150_000 {
                // Everything before this row has been handed to the connection; the server
                // copies it without anything more from this thread.
                let deadline = Instant::now() + Duration::from_secs(60);
                while seen.is_none() && Instant::now() < deadline {
                    let copied = Postgres::select_i64s(
                        &mut observer,
                        &format!("SELECT tuples_processed AS v FROM pg_stat_progress_copy WHERE pid = {pid}"),
                    );
                    seen = copied.first().copied().flatten().filter(|&rows| rows > 0);
                }
            }
            entry(i)
        });
        assert_eq!(bulk_insert(&mut conn, rows).unwrap(), n);
        let seen = seen.expect("the server copied no row before the iterator was done");
        assert!(seen < n as i64, "{seen}");
        assert_eq!(entry_count(&mut conn), n as i64);
    }

    /// A duplicate key refused mid-stream inside the caller's transaction rolls back the batch's
    /// savepoint only: the caller's earlier rows stay and its transaction goes on.
    #[test]
    fn a_row_refused_mid_stream_inside_a_transaction_rolls_back_only_the_batch() {
        let (_db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        conn.transaction::<_, Error, _>(|conn| {
            bulk_insert(conn, (0..1_000).map(entry))?;
            let bad = (1_000..200_000).map(|i| {
                let mut row = entry(i);
                if i == 150_000 {
                    row.seq = 0;
                }
                row
            });
            let error = bulk_insert(conn, bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::Database(diesel::result::Error::DatabaseError(
                        DatabaseErrorKind::UniqueViolation,
                        _
                    ))
                ),
                "{error:?}"
            );
            bulk_insert(conn, (200_000..200_500).map(entry))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(entry_count(&mut conn), 1_500);
    }

    /// A text value PostgreSQL cannot store (a NUL character) in row 600,001: the server refuses
    /// it mid-stream; none of the batch remains.
    #[test]
    fn an_unstorable_text_in_row_600001_rolls_back_the_whole_batch() {
        let (_db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        let op = BatchOperation::create_synchronous("stream")
            .insert(&mut conn)
            .unwrap();
        let rows = (0..BAD_BATCH).map(|i| {
            let mut row = entry(i);
            if i == BAD_ROW {
                row.label = "nul \0 inside".to_owned();
            }
            row
        });
        let error = bulk_insert_tracked(&mut conn, &op, rows).unwrap_err();
        match &error {
            Error::Database(diesel::result::Error::DatabaseError(_, info)) => {
                assert!(info.message().contains("0x00"), "{error:?}")
            }
            other => panic!("expected the database's refusal, got {other:?}"),
        }
        assert_eq!(entry_count(&mut conn), 0);
        assert_eq!(
            bulk_insert_tracked(&mut conn, &op, (0..10).map(entry)).unwrap(),
            10
        );
    }

    /// A value whose own `ToSql` fails in row 600,001 (a field type the library leaves to
    /// Diesel's encoding, so this batch is collected): Diesel ends the `COPY` with that error,
    /// and PostgreSQL reports it; none of the batch remains and the connection goes on.
    #[test]
    fn a_value_that_fails_to_encode_in_row_600001_rolls_back_the_whole_batch() {
        let (_db, mut conn) = migrated::<Postgres>();
        create_tables::<Postgres>(&mut conn);
        let op = BatchOperation::create_synchronous("stream")
            .insert(&mut conn)
            .unwrap();
        let checked = |i: usize| CheckedEntry {
            game_id: 1,
            seq: Checked(if i == BAD_ROW { -1 } else { i as i64 }),
            label: format!("entry {i}"),
            batchoperation_id: None,
        };
        let error = bulk_insert_tracked(&mut conn, &op, (0..BAD_BATCH).map(checked)).unwrap_err();
        match &error {
            Error::Database(diesel::result::Error::DatabaseError(_, info)) => {
                assert!(
                    info.message().contains("Checked(-1) is negative"),
                    "{error:?}"
                )
            }
            other => panic!("expected the failed COPY, got {other:?}"),
        }
        assert_eq!(entry_count(&mut conn), 0);
        assert_eq!(
            bulk_insert_tracked(&mut conn, &op, (0..10).map(checked)).unwrap(),
            10
        );
        assert_eq!(
            NewEntry::in_batch(&op)
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
            10
        );
    }

    fn entry_count(conn: &mut diesel::PgConnection) -> i64 {
        entries::table.count().get_result(conn).unwrap()
    }
}
