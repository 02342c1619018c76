//! Finishes per minute, counted by the database: the newest finish times of one queue and
//! result (one backward range of the `finished` index, at most a limit of them) grouped by
//! minute on the server, so a chart of an hour costs one statement returning at most 60 rows,
//! not thousands of timestamps to convert.
//!
//! Only the minute's arithmetic differs between backends; the statement is otherwise the same.

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::connection::LoadConnection;
use diesel::deserialize::FromSql;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::{Dialect, UtcDateTime, UtcTimestamp};
use crate::status::OperationResult;

/// One minute's count (public only because the storage layer's trait is).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::QueryableByName)]
pub struct MinuteCount {
    /// Whole minutes from the window's start.
    #[diesel(sql_type = BigInt)]
    pub minute: i64,
    /// Finishes in that minute.
    #[diesel(sql_type = BigInt)]
    pub finishes: i64,
    /// The earliest of them.
    #[diesel(sql_type = Nullable<UtcTimestamp>)]
    pub oldest: Option<DateTime<Utc>>,
}

/// The statement in `dialect`. Binds, in order: the window's start, the queue, the result, the
/// window's start again, the limit.
fn sql(dialect: Dialect) -> String {
    let (minute, placeholders): (&str, [&str; 5]) = match dialect {
        Dialect::Postgres => (
            "FLOOR(EXTRACT(EPOCH FROM (finished_datetime - $1)) / 60)::BIGINT",
            ["$1", "$2", "$3", "$4", "$5"],
        ),
        Dialect::Mysql => (
            "CAST(TIMESTAMPDIFF(MINUTE, ?, finished_datetime) AS SIGNED)",
            ["?"; 5],
        ),
        // Whole seconds since the epoch; SQLite reads the stored text's fraction and drops it.
        Dialect::Sqlite => (
            "(CAST(strftime('%s', finished_datetime) AS INTEGER) \
             - CAST(strftime('%s', ?) AS INTEGER)) / 60",
            ["?"; 5],
        ),
    };
    let [_, queue, result, since, limit] = placeholders;
    format!(
        "SELECT {minute} AS minute, COUNT(*) AS finishes, MIN(finished_datetime) AS oldest \
         FROM (SELECT finished_datetime FROM batchframework_batchoperation \
               WHERE status = 'finished' AND queue = {queue} AND result = {result} \
               AND finished_datetime > {since} \
               ORDER BY finished_datetime DESC LIMIT {limit}) AS recent \
         GROUP BY 1"
    )
}

/// The newest `limit` finishes of `queue` with `result` after `since`, counted per minute from
/// `since`.
pub(crate) fn finishes_by_minute<C, DB>(
    conn: &mut C,
    dialect: Dialect,
    queue: &str,
    result: OperationResult,
    since: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<MinuteCount>>
where
    C: LoadConnection<Backend = DB>,
    DB: Backend + HasSqlType<UtcTimestamp>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB> + FromSql<BigInt, DB>,
    DateTime<Utc>: ToSql<UtcTimestamp, DB>,
    for<'a> BoxedSqlQuery<'a, DB, SqlQuery>: diesel::query_dsl::LoadQuery<'a, C, MinuteCount>,
{
    diesel::sql_query(sql(dialect))
        .into_boxed::<DB>()
        .bind::<UtcTimestamp, _>(UtcDateTime(since))
        .bind::<Text, _>(queue)
        .bind::<Text, _>(result.as_str())
        .bind::<UtcTimestamp, _>(UtcDateTime(since))
        .bind::<BigInt, _>(limit)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::{sql, Dialect};

    #[test]
    fn each_dialect_has_five_placeholders_in_order() {
        assert_eq!(sql(Dialect::Mysql).matches('?').count(), 5);
        assert_eq!(sql(Dialect::Sqlite).matches('?').count(), 5);
        let pg = sql(Dialect::Postgres);
        let positions: Vec<usize> = ["$1", "$2", "$3", "$4", "$5"]
            .iter()
            .map(|p| pg.find(p).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{pg}");
    }
}
