//! The SQL dialects, for the few statements this crate writes as text (the DDL for user
//! tables, the worker's finishing UPDATE), and each backend's statement limits.

/// SQLite's default compiled limit on bind parameters per statement (`SQLITE_MAX_VARIABLE_NUMBER`
/// since 3.32, and in the bundled build).
pub(crate) const SQLITE_MAX_BINDS: usize = 32_766;
/// MySQL's and MariaDB's limit on placeholders per prepared statement.
pub(crate) const MYSQL_MAX_BINDS: usize = 65_535;
/// The placeholders one bulk `INSERT` carries on MySQL/MariaDB: an eighth of the protocol's limit.
/// MariaDB runs statements of a few thousand values with less work per row than statements near
/// the limit (measured by the benchmark: a quarter less server time for 100,000 rows), and each
/// connection keeps one such statement prepared per row type, which this keeps small.
pub(crate) const MYSQL_BULK_BINDS: usize = 8_192;

/// How much of a statement-size limit (MySQL's `max_allowed_packet`) this crate lets one
/// statement's values fill: three quarters, the rest is headroom for the SQL text and the
/// protocol's per-value framing.
pub(crate) fn statement_budget(max_packet_bytes: usize) -> usize {
    max_packet_bytes / 4 * 3
}

/// Which database's SQL to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
    /// MySQL 8 / MariaDB 10.6+.
    Mysql,
}

impl Dialect {
    /// The most bind parameters one statement may carry, or `None` where the protocol counts
    /// them past any statement this crate writes (PostgreSQL's 65,535 are never reached: its
    /// bulk inserts use `COPY`).
    #[cfg_attr(not(test), allow(dead_code))] // the workers' statements are tested against it
    pub(crate) fn max_binds(self) -> Option<usize> {
        match self {
            Dialect::Postgres => None,
            Dialect::Sqlite => Some(SQLITE_MAX_BINDS),
            Dialect::Mysql => Some(MYSQL_MAX_BINDS),
        }
    }

    /// The bind parameters one bulk `INSERT` carries at most, or `None` where bulk inserts use
    /// `COPY` (PostgreSQL): SQLite's limit, and on MySQL/MariaDB [`MYSQL_BULK_BINDS`].
    pub(crate) const fn bulk_binds(self) -> Option<usize> {
        match self {
            Dialect::Postgres => None,
            Dialect::Sqlite => Some(SQLITE_MAX_BINDS),
            Dialect::Mysql => Some(MYSQL_BULK_BINDS),
        }
    }

    /// The `n`th (from 1) bind placeholder of a raw SQL statement: `$n` on PostgreSQL, `?`
    /// elsewhere.
    #[cfg_attr(not(feature = "r2d2"), allow(dead_code))] // used by the workers' statements
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
        }
    }

    /// `name` as a quoted identifier. The caller has validated it (no quote characters), so
    /// quoting only keeps reserved words and case intact.
    pub(crate) fn quote(self, name: &str) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
            Dialect::Mysql => format!("`{name}`"),
        }
    }

    /// The statements that add the nullable, indexed `batchoperation_id` foreign key to `table`
    /// (up) and remove it again (down). Names are already validated and quoted.
    pub(crate) fn tracking_column_ddl(
        self,
        table: &str,
        column: &str,
        index: &str,
        constraint: &str,
    ) -> (String, String) {
        let target = "batchframework_batchoperation (id) ON DELETE SET NULL";
        match self {
            // SQLite can only add a foreign key inline with the column; it enforces it when the
            // connection has `PRAGMA foreign_keys = ON`.
            Dialect::Postgres | Dialect::Sqlite => {
                let named = if self == Dialect::Postgres {
                    format!("CONSTRAINT {constraint} ")
                } else {
                    String::new()
                };
                (
                    format!(
                        "ALTER TABLE {table} ADD COLUMN {column} BIGINT NULL {named}REFERENCES {target};\n\
                         CREATE INDEX {index} ON {table} ({column});\n"
                    ),
                    format!(
                        "DROP INDEX {index};\n\
                         ALTER TABLE {table} DROP COLUMN {column};\n"
                    ),
                )
            }
            Dialect::Mysql => (
                format!(
                    "ALTER TABLE {table} ADD COLUMN {column} BIGINT NULL,\n    \
                     ADD INDEX {index} ({column}),\n    \
                     ADD CONSTRAINT {constraint} FOREIGN KEY ({column}) REFERENCES {target};\n"
                ),
                format!(
                    "ALTER TABLE {table} DROP FOREIGN KEY {constraint};\n\
                     ALTER TABLE {table} DROP INDEX {index}, DROP COLUMN {column};\n"
                ),
            ),
        }
    }
}
