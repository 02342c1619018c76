//! Test support: a throwaway database per test on each backend, and [`backend_tests!`], which
//! instantiates one generic test function once per enabled backend.
//!
//! Server URLs come from `PG_DATABASE_URL` / `MYSQL_DATABASE_URL`, falling back to
//! `DATABASE_URL` when it names that backend, then to the local defaults in `.env.sample`.
//! Every test gets its own PostgreSQL schema, MySQL database or SQLite file, dropped when the
//! [`TestDatabase`] is dropped (also when the test panics), so tests run in parallel and leave
//! nothing behind.

#![allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

/// The repository README's Rust blocks, compiled and run as doc tests so that what the README
/// shows keeps working (`cargo test --doc -p batchframework-tests`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod cluster;
pub mod forwarder;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use batchframework_diesel::worker::WorkerConnection;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::Connection;

/// A backend the suite runs against.
pub trait TestBackend: 'static {
    /// Its name, as in the test paths (`postgres`, `sqlite`, `mysql`).
    const NAME: &'static str;

    /// Its connection type.
    type Connection: WorkerConnection;

    /// Statements one `NewOperation::insert` issues: the INSERT, plus `SELECT LAST_INSERT_ID()`
    /// where the backend has no `RETURNING`.
    const INSERT_STATEMENTS: usize;

    /// Creates an empty throwaway database.
    fn create_database() -> TestDatabase;

    /// Opens a new connection to the database.
    fn connect(database: &TestDatabase) -> Self::Connection {
        Self::Connection::establish(&database.url)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", database.url))
    }

    /// A pool of connections to the database, each set up as [`TestBackend::connect`] does.
    fn pool(database: &TestDatabase, size: u32) -> Pool<ConnectionManager<Self::Connection>> {
        Pool::builder()
            .max_size(size)
            .connection_customizer(Box::new(Prepare::<Self>(std::marker::PhantomData)))
            .build(ConnectionManager::new(&database.url))
            .expect("build a connection pool")
    }

    /// Session settings every connection of the suite gets.
    fn prepare(_conn: &mut Self::Connection) {}

    /// Puts the session in a time zone far from UTC, where the backend has session time zones.
    fn set_session_time_zone(conn: &mut Self::Connection);

    /// The library's embedded migrations for this backend.
    fn migrations() -> diesel_migrations::EmbeddedMigrations;

    /// Reverts the newest applied migration, as an application rolling back would.
    fn revert_last_migration(conn: &mut Self::Connection);

    /// An auto-incrementing BIGINT primary key column named `id`, in this backend's DDL.
    const ID_COLUMN: &'static str;

    /// The SQL dialect, for generated DDL.
    const DIALECT: batchframework_diesel::Dialect;

    /// Runs a query whose single column is a nullable BIGINT named `v` and returns its values,
    /// for tests that check user tables with raw SQL.
    fn select_i64s(conn: &mut Self::Connection, sql: &str) -> Vec<Option<i64>>;
}

/// One row of [`TestBackend::select_i64s`].
#[derive(diesel::QueryableByName)]
struct I64Row {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    v: Option<i64>,
}

/// The concrete bodies of `select_i64s` and `revert_last_migration`, the same for every
/// backend's connection type.
macro_rules! select_i64s {
    () => {
        fn revert_last_migration(conn: &mut Self::Connection) {
            use diesel_migrations::MigrationHarness;
            conn.revert_last_migration(Self::migrations())
                .expect("revert the last migration");
        }

        fn select_i64s(conn: &mut Self::Connection, sql: &str) -> Vec<Option<i64>> {
            use diesel::RunQueryDsl;
            diesel::sql_query(sql)
                .load::<I64Row>(conn)
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
                .into_iter()
                .map(|row| row.v)
                .collect()
        }
    };
}

/// Applies [`TestBackend::prepare`] to pooled connections.
struct Prepare<B: ?Sized>(std::marker::PhantomData<fn() -> B>);

impl<B: ?Sized> std::fmt::Debug for Prepare<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepare")
    }
}

impl<B: TestBackend + ?Sized> diesel::r2d2::CustomizeConnection<B::Connection, diesel::r2d2::Error>
    for Prepare<B>
{
    fn on_acquire(&self, conn: &mut B::Connection) -> Result<(), diesel::r2d2::Error> {
        B::prepare(conn);
        Ok(())
    }
}

/// A throwaway database; dropped with the value.
pub struct TestDatabase {
    /// The URL to connect to it with.
    pub url: String,
    cleanup: Cleanup,
}

impl TestDatabase {
    /// A database another process owns (a child worker's view of its parent's database): it is
    /// not dropped by this handle.
    pub fn existing(url: String) -> Self {
        TestDatabase {
            url,
            cleanup: Cleanup::None,
        }
    }
}

enum Cleanup {
    None,
    #[cfg(feature = "postgres")]
    PostgresSchema {
        admin_url: String,
        schema: String,
    },
    #[cfg(feature = "postgres")]
    PostgresDatabase {
        admin_url: String,
        database: String,
    },
    #[cfg(feature = "mysql")]
    MysqlDatabase {
        admin_url: String,
        database: String,
    },
    #[cfg(feature = "sqlite")]
    SqliteFile(#[allow(dead_code)] tempfile::TempDir),
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            #[cfg(feature = "postgres")]
            Cleanup::PostgresSchema { admin_url, schema } => {
                admin_execute::<diesel::PgConnection>(
                    admin_url,
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                );
            }
            #[cfg(feature = "postgres")]
            Cleanup::PostgresDatabase {
                admin_url,
                database,
            } => {
                admin_execute::<diesel::PgConnection>(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                );
            }
            #[cfg(feature = "mysql")]
            Cleanup::MysqlDatabase {
                admin_url,
                database,
            } => {
                admin_execute::<diesel::MysqlConnection>(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {database}"),
                );
            }
            #[cfg(feature = "sqlite")]
            Cleanup::SqliteFile(_) => {} // the TempDir removes itself
        }
    }
}

/// PostgreSQL: a whole database of the test's own instead of a schema, for a test that must
/// not hear the other tests' notifications (they are sent to every listener of a database).
#[cfg(feature = "postgres")]
pub fn postgres_database() -> TestDatabase {
    let admin_url = url_from_env(
        "PG_DATABASE_URL",
        "postgres",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let database = unique_name();
    admin_execute::<diesel::PgConnection>(&admin_url, &format!("CREATE DATABASE {database}"));
    TestDatabase {
        url: with_database(&admin_url, &database),
        cleanup: Cleanup::PostgresDatabase {
            admin_url,
            database,
        },
    }
}

/// A name no other test, thread or concurrent run uses.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "bf_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn url_from_env(specific: &str, scheme: &str, default: &str) -> String {
    std::env::var(specific)
        .ok()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| u.starts_with(scheme))
        })
        .unwrap_or_else(|| default.to_owned())
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn admin_execute<C: Connection>(admin_url: &str, sql: &str) {
    let mut conn =
        C::establish(admin_url).unwrap_or_else(|e| panic!("cannot connect to {admin_url}: {e}"));
    conn.batch_execute(sql)
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

/// PostgreSQL: a schema per test, selected through the connection's `search_path`.
#[cfg(feature = "postgres")]
pub struct Postgres;

#[cfg(feature = "postgres")]
impl TestBackend for Postgres {
    type Connection = diesel::PgConnection;
    const DIALECT: batchframework_diesel::Dialect = batchframework_diesel::Dialect::Postgres;
    const NAME: &'static str = "postgres";
    fn migrations() -> diesel_migrations::EmbeddedMigrations {
        batchframework_diesel::migrations::POSTGRES
    }
    const ID_COLUMN: &'static str = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
    select_i64s!();
    const INSERT_STATEMENTS: usize = 1;

    fn create_database() -> TestDatabase {
        let admin_url = url_from_env(
            "PG_DATABASE_URL",
            "postgres",
            "postgres://postgres@127.0.0.1:5432/test",
        );
        let schema = unique_name();
        admin_execute::<diesel::PgConnection>(&admin_url, &format!("CREATE SCHEMA {schema}"));
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
        TestDatabase {
            url,
            cleanup: Cleanup::PostgresSchema { admin_url, schema },
        }
    }

    fn set_session_time_zone(conn: &mut Self::Connection) {
        conn.batch_execute("SET TIME ZONE 'America/New_York'")
            .expect("set time zone");
    }
}

/// MySQL/MariaDB: a database per test.
#[cfg(feature = "mysql")]
pub struct Mysql;

#[cfg(feature = "mysql")]
impl TestBackend for Mysql {
    type Connection = diesel::MysqlConnection;
    const DIALECT: batchframework_diesel::Dialect = batchframework_diesel::Dialect::Mysql;
    const NAME: &'static str = "mysql";
    fn migrations() -> diesel_migrations::EmbeddedMigrations {
        batchframework_diesel::migrations::MYSQL
    }
    const ID_COLUMN: &'static str = "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY";
    select_i64s!();
    const INSERT_STATEMENTS: usize = 2;

    fn create_database() -> TestDatabase {
        let admin_url = url_from_env(
            "MYSQL_DATABASE_URL",
            "mysql",
            "mysql://root@127.0.0.1:3306/test",
        );
        let database = unique_name();
        admin_execute::<diesel::MysqlConnection>(
            &admin_url,
            &format!("CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        );
        let url = with_database(&admin_url, &database);
        TestDatabase {
            url,
            cleanup: Cleanup::MysqlDatabase {
                admin_url,
                database,
            },
        }
    }

    fn set_session_time_zone(conn: &mut Self::Connection) {
        conn.batch_execute("SET time_zone = '-05:00'")
            .expect("set time zone");
    }
}

/// `mysql://user@host:port/old?query` with the database replaced.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// SQLite: a file in a temporary directory, so several connections can share it.
#[cfg(feature = "sqlite")]
pub struct Sqlite;

#[cfg(feature = "sqlite")]
impl TestBackend for Sqlite {
    type Connection = diesel::SqliteConnection;
    const DIALECT: batchframework_diesel::Dialect = batchframework_diesel::Dialect::Sqlite;
    const NAME: &'static str = "sqlite";
    fn migrations() -> diesel_migrations::EmbeddedMigrations {
        batchframework_diesel::migrations::SQLITE
    }
    const ID_COLUMN: &'static str = "id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL";
    select_i64s!();
    const INSERT_STATEMENTS: usize = 1;

    fn create_database() -> TestDatabase {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = dir.path().join("test.sqlite3").display().to_string();
        TestDatabase {
            url,
            cleanup: Cleanup::SqliteFile(dir),
        }
    }

    fn connect(database: &TestDatabase) -> Self::Connection {
        let mut conn = diesel::SqliteConnection::establish(&database.url)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", database.url));
        Self::prepare(&mut conn);
        conn
    }

    fn prepare(conn: &mut Self::Connection) {
        // Concurrent tests wait for the write lock instead of failing with SQLITE_BUSY, and
        // foreign keys are enforced as on the other backends.
        conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
            .expect("connection pragmas");
    }

    fn set_session_time_zone(_conn: &mut Self::Connection) {
        // SQLite has no session time zone: values are stored and read as UTC text.
    }
}

/// Counts the statements a connection runs, leaving out transaction control (BEGIN, COMMIT,
/// ROLLBACK, SAVEPOINT), as the query-count contracts do.
#[derive(Clone, Default)]
pub struct StatementCounter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl StatementCounter {
    /// Installs a counter on `conn`.
    pub fn install<C: Connection>(conn: &mut C) -> Self {
        let counter = StatementCounter::default();
        let statements = std::sync::Arc::clone(&counter.0);
        conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
                let text = query.to_string();
                let keyword = text.trim_start().to_ascii_uppercase();
                let control = [
                    "BEGIN",
                    "COMMIT",
                    "ROLLBACK",
                    "SAVEPOINT",
                    "RELEASE",
                    "START TRANSACTION",
                ]
                .iter()
                .any(|k| keyword.starts_with(k));
                if !control {
                    statements.lock().expect("counter lock").push(text);
                }
            }
        });
        counter
    }

    /// The statements counted since the last call, emptying the list.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("counter lock"))
    }
}

/// A throwaway database with the batchframework migrations applied, and a connection to it.
pub fn migrated<B: TestBackend>() -> (TestDatabase, B::Connection) {
    let database = B::create_database();
    let mut conn = B::connect(&database);
    batchframework_diesel::run_migrations(&mut conn).expect("run the migrations");
    (database, conn)
}

/// Instantiates generic test functions `fn name<B: TestBackend>()` once per enabled backend, as
/// `<module>::postgres::name`, `<module>::sqlite::name` and `<module>::mysql::name`, so a
/// backend's tests can be selected by name.
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        #[cfg(feature = "postgres")]
        pub(crate) mod postgres {
            $( #[test] fn $test() { super::$test::<$crate::Postgres>() } )*
        }
        #[cfg(feature = "sqlite")]
        pub(crate) mod sqlite {
            $( #[test] fn $test() { super::$test::<$crate::Sqlite>() } )*
        }
        #[cfg(feature = "mysql")]
        pub(crate) mod mysql {
            $( #[test] fn $test() { super::$test::<$crate::Mysql>() } )*
        }
    };
}

/// Like [`backend_tests!`], for tests that need concrete connection types (Diesel queries on the
/// test's own tables): the items are compiled once per enabled backend inside a module named
/// after it, where `B` is that backend and `Conn` its connection type.
#[macro_export]
macro_rules! per_backend {
    ($($item:item)*) => {
        #[cfg(feature = "postgres")]
        pub(crate) mod postgres {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type B = $crate::Postgres;
            #[allow(dead_code)]
            type Conn = diesel::PgConnection;
            $($item)*
        }
        #[cfg(feature = "sqlite")]
        pub(crate) mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type B = $crate::Sqlite;
            #[allow(dead_code)]
            type Conn = diesel::SqliteConnection;
            $($item)*
        }
        #[cfg(feature = "mysql")]
        pub(crate) mod mysql {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type B = $crate::Mysql;
            #[allow(dead_code)]
            type Conn = diesel::MysqlConnection;
            $($item)*
        }
    };
}

/// Sets timestamp `column` of operation `id` with SQL, as time passing would.
pub fn set_timestamp<B: TestBackend>(
    conn: &mut B::Connection,
    id: i64,
    column: &str,
    instant: chrono::DateTime<chrono::Utc>,
) {
    let text = instant.format("%Y-%m-%d %H:%M:%S%.6f");
    let literal = match B::NAME {
        "postgres" => format!("'{text}+00'"),
        _ => format!("'{text}'"),
    };
    conn.batch_execute(&format!(
        "UPDATE batchframework_batchoperation SET {column} = {literal} WHERE id = {id}"
    ))
    .expect("set a timestamp");
}
