//! The tracking column that lets a user table's rows be selected back by the operation that
//! created them: a nullable `batchoperation_id` foreign key to `batchframework_batchoperation`,
//! `ON DELETE SET NULL` (pruning operations never deletes user rows) and indexed (the select-back
//! is an index scan).

use crate::backend::{BatchConnection, Dialect, Storage};
use crate::error::{Error, Result};

/// A model with the tracking column; implemented by [`#[batch_tracked]`](crate::batch_tracked).
///
/// The library sets the id on each row it bulk inserts for an operation, so callers never set it
/// themselves.
pub trait BatchTracked {
    /// The id of the operation that created the row, if any.
    fn batch_operation_id(&self) -> Option<i64>;

    /// Tags the row with an operation's id (or clears the tag).
    fn set_batch_operation_id(&mut self, id: Option<i64>);
}

/// The name of the tracking column in user tables.
pub const TRACKING_COLUMN: &str = "batchoperation_id";

/// The longest identifier PostgreSQL keeps (MySQL allows 64): longer names would be truncated
/// there and refused here, so the generated index and constraint names must fit.
const MAX_IDENTIFIER: usize = 63;
const INDEX_SUFFIX: &str = "_batchoperation_id_idx";
const CONSTRAINT_SUFFIX: &str = "_batchoperation_id_fk";

/// The migration SQL that adds the tracking column to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingColumnSql {
    /// Adds the column, its foreign key and its index; for the migration's `up.sql`.
    pub up: String,
    /// Removes them again; for the migration's `down.sql`.
    pub down: String,
}

/// The SQL to add the tracking column to `table`, for a migration of your own.
///
/// `table` must be a plain identifier (letters, digits and `_`, not starting with a digit, at
/// most 41 characters so the generated index name fits every backend); anything else (quotes,
/// semicolons, spaces, a schema prefix) is an [`Error::InvalidIdentifier`], never spliced into
/// SQL.
///
/// ```
/// use batchframework_diesel::{tracking_column_sql, Dialect};
///
/// let sql = tracking_column_sql(Dialect::Postgres, "players")?;
/// assert!(sql.up.starts_with(r#"ALTER TABLE "players" ADD COLUMN "batchoperation_id" BIGINT NULL"#));
/// assert!(tracking_column_sql(Dialect::Postgres, "players; DROP TABLE users").is_err());
/// # Ok::<(), batchframework_diesel::Error>(())
/// ```
///
/// On SQLite the foreign key is enforced only on connections with `PRAGMA foreign_keys = ON`.
pub fn tracking_column_sql(dialect: Dialect, table: &str) -> Result<TrackingColumnSql> {
    validate_table_name(table)?;
    let (up, down) = dialect.tracking_column_ddl(
        &dialect.quote(table),
        &dialect.quote(TRACKING_COLUMN),
        &dialect.quote(&format!("{table}{INDEX_SUFFIX}")),
        &dialect.quote(&format!("{table}{CONSTRAINT_SUFFIX}")),
    );
    Ok(TrackingColumnSql { up, down })
}

/// Adds the tracking column to `table` on this connection's database now, for applications and
/// tests that set up tables in code rather than in migration files.
pub fn add_tracking_column<C: BatchConnection>(conn: &mut C, table: &str) -> Result<()> {
    let sql = tracking_column_sql(<C::Storage as Storage>::DIALECT, table)?;
    conn.batch_execute(&sql.up)?;
    Ok(())
}

fn validate_table_name(table: &str) -> Result<()> {
    let invalid = |reason: &'static str| Error::InvalidIdentifier {
        name: table.to_owned(),
        reason,
    };
    let mut chars = table.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(invalid("it must start with an ASCII letter or `_`"))
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(
            "only ASCII letters, digits and `_` are allowed (no quotes, spaces, `;` or schema prefix)",
        ));
    }
    if table.len() + INDEX_SUFFIX.len() > MAX_IDENTIFIER {
        return Err(invalid(
            "it is longer than 41 characters, so the index name would not fit in 63",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_quoted_per_dialect() {
        let pg = tracking_column_sql(Dialect::Postgres, "players").ok();
        let pg = pg.map(|s| s.up).unwrap_or_default();
        assert!(pg.contains(r#"CONSTRAINT "players_batchoperation_id_fk" REFERENCES batchframework_batchoperation (id) ON DELETE SET NULL"#), "{pg}");
        assert!(
            pg.contains(
                r#"CREATE INDEX "players_batchoperation_id_idx" ON "players" ("batchoperation_id")"#
            ),
            "{pg}"
        );
        let my = tracking_column_sql(Dialect::Mysql, "Order_2").ok();
        let my = my.map(|s| s.up).unwrap_or_default();
        assert!(
            my.starts_with("ALTER TABLE `Order_2` ADD COLUMN `batchoperation_id`"),
            "{my}"
        );
    }

    #[test]
    fn names_that_could_inject_sql_are_refused() {
        for name in [
            "",
            "players\"; DROP TABLE users; --",
            "players`",
            "my players",
            "a;b",
            "public.players",
            "1players",
            "spieler_ü",
            &"p".repeat(42),
        ] {
            let result = tracking_column_sql(Dialect::Sqlite, name);
            assert!(
                matches!(result, Err(Error::InvalidIdentifier { .. })),
                "{name:?}: {result:?}"
            );
        }
        assert!(tracking_column_sql(Dialect::Sqlite, &"p".repeat(41)).is_ok());
    }
}
