//! `UtcTimestamp`: one SQL type for "a UTC instant with microseconds" on every backend.
//!
//! Diesel maps `DateTime<Utc>` to a different SQL type on each backend (and not at all on
//! MySQL), which would force three `table!` definitions. This type lets the single schema use
//! `DateTime<Utc>` everywhere and store it as each backend does best:
//!
//! * PostgreSQL: `TIMESTAMPTZ`, so the session's `TimeZone` never shifts a value;
//! * MySQL/MariaDB: `DATETIME(6)` holding UTC wall-clock time (`DATETIME` is never converted by
//!   the session `time_zone`, unlike `TIMESTAMP`);
//! * SQLite: fixed-width text `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, so text comparison is
//!   chronological (for the years 0001–9999 that every backend can store; see
//!   [`UtcDateTime::clamped`]).

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::expression::AsExpression;
use diesel::query_builder::QueryId;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::SqlType;

/// The current time at the precision every backend stores (microseconds), so an instant
/// written and read back compares equal.
pub(crate) fn now() -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
}

/// The `run_after` of a workflow step that waits for its dependencies: 9999-12-31, beyond any
/// claim's range of due delayed work. Releasing the step sets it back to NULL.
pub(crate) fn waiting_run_after() -> DateTime<Utc> {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `delay` after `start`; a delay beyond what a timestamp can hold gives the latest instant
/// (which `UtcDateTime::clamped` brings into the storable years) rather than an overflow.
pub(crate) fn later_by(start: DateTime<Utc>, delay: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| start.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The SQL type of the table's timestamp columns. Rows read them as `chrono::DateTime<Utc>`;
/// values written or compared go through [`UtcDateTime`].
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(mysql_type(name = "DateTime"))]
pub struct UtcTimestamp;

/// Timestamps are ordered, so `max(created_datetime)` and friends work.
impl diesel::sql_types::SqlOrd for UtcTimestamp {}

/// A `DateTime<Utc>` as a query value of SQL type [`UtcTimestamp`].
///
/// Diesel's coherence rules do not let this crate make `DateTime<Utc>` itself an expression of a
/// new SQL type, so values are wrapped when you compare against the table's timestamp columns:
///
/// ```
/// # use batchframework_diesel::{schema::batchframework_batchoperation::dsl, UtcDateTime};
/// # use diesel::prelude::*;
/// let cutoff = chrono::Utc::now() - chrono::Duration::minutes(15);
/// let old = dsl::batchframework_batchoperation.filter(dsl::created_datetime.lt(UtcDateTime(cutoff)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression)]
#[diesel(sql_type = UtcTimestamp)]
pub struct UtcDateTime(pub DateTime<Utc>);

impl UtcDateTime {
    /// 0001-01-01 00:00:00 UTC in microseconds since the Unix epoch.
    const FIRST_MICROS: i64 = -62_135_596_800_000_000;
    /// 9999-12-31 23:59:59.999999 UTC in microseconds since the Unix epoch.
    const LAST_MICROS: i64 = 253_402_300_799_999_999;

    /// This instant moved into the years 0001–9999, the range MySQL's `DATETIME` and the
    /// fixed-width SQLite text hold. A comparison bound clamped this way selects the same rows as
    /// the original would, since every stored timestamp is inside that range; unclamped, a bound
    /// past year 9999 matches nothing on SQLite and fails to bind on MySQL.
    pub fn clamped(self) -> UtcDateTime {
        let bound = |micros| DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or(self.0);
        UtcDateTime(
            self.0
                .clamp(bound(Self::FIRST_MICROS), bound(Self::LAST_MICROS)),
        )
    }
}

impl From<DateTime<Utc>> for UtcDateTime {
    fn from(value: DateTime<Utc>) -> Self {
        UtcDateTime(value)
    }
}

impl<DB> ToSql<UtcTimestamp, DB> for UtcDateTime
where
    DB: Backend,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::UtcTimestamp;
    use chrono::{DateTime, Utc};
    use diesel::deserialize::{self, FromSql};
    use diesel::pg::{Pg, PgValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Timestamptz;

    impl ToSql<UtcTimestamp, Pg> for DateTime<Utc> {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(self, out)
        }
    }

    impl FromSql<UtcTimestamp, Pg> for DateTime<Utc> {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(bytes)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::UtcTimestamp;
    use chrono::{DateTime, Utc};
    use diesel::backend::Backend;
    use diesel::deserialize::{self, FromSql};
    use diesel::serialize::{self, IsNull, Output, ToSql};
    use diesel::sql_types::TimestamptzSqlite;
    use diesel::sqlite::Sqlite;

    impl ToSql<UtcTimestamp, Sqlite> for DateTime<Utc> {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
            Ok(IsNull::No)
        }
    }

    /// Reads this crate's format, and also text written by other programs: with a UTC offset
    /// (converted to UTC) or without one (taken as UTC).
    impl FromSql<UtcTimestamp, Sqlite> for DateTime<Utc> {
        fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
            <DateTime<Utc> as FromSql<TimestamptzSqlite, Sqlite>>::from_sql(value)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::UtcTimestamp;
    use chrono::{DateTime, NaiveDateTime, Utc};
    use diesel::deserialize::{self, FromSql};
    use diesel::mysql::{Mysql, MysqlValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Datetime;

    impl ToSql<UtcTimestamp, Mysql> for DateTime<Utc> {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
            <NaiveDateTime as ToSql<Datetime, Mysql>>::to_sql(
                &self.naive_utc(),
                &mut out.reborrow(),
            )
        }
    }

    impl FromSql<UtcTimestamp, Mysql> for DateTime<Utc> {
        fn from_sql(bytes: MysqlValue<'_>) -> deserialize::Result<Self> {
            <NaiveDateTime as FromSql<Datetime, Mysql>>::from_sql(bytes).map(|t| t.and_utc())
        }
    }
}
