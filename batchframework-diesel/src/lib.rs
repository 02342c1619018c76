//! Track batch and background operations in Diesel applications, on PostgreSQL, SQLite and
//! MySQL/MariaDB.
//!
//! A port of the Django module `ievv_batchframework`: each batch or background operation is a
//! row of `batchframework_batchoperation` ([`BatchOperation`]) recording its type, the object it
//! is about (its [`ContextObject`]), who started it, JSON input and output, and its lifecycle
//! `unprocessed → running → finished` with a result of `successful` or `failed`. Every step of
//! the lifecycle is one guarded `UPDATE`: an illegal one returns [`Error::IllegalTransition`] and
//! changes nothing.
//!
//! # Bulk-create related rows in 5 statements
//!
//! Rows inserted by one operation carry its id in a `batchoperation_id` column
//! ([`#[batch_tracked]`](batch_tracked)), so they are selected back with one query and their
//! children built from them, whatever the number of rows: binary `COPY` on PostgreSQL,
//! bind-limit-sized multi-row `INSERT`s elsewhere.
//!
//! ```
//! use batchframework_diesel::{
//!     batch_tracked, bulk_insert, bulk_insert_tracked, bulk_insertable, BatchOperation,
//!     ContextRef,
//! };
//! use diesel::connection::SimpleConnection;
//! use diesel::prelude::*;
//!
//! diesel::table! {
//!     players (id) { id -> BigInt, name -> Text, batchoperation_id -> Nullable<BigInt>, }
//! }
//! diesel::table! {
//!     cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
//! }
//!
//! #[batch_tracked] // above the derive: it adds the `batchoperation_id` field
//! #[derive(Insertable)]
//! #[diesel(table_name = players)]
//! struct NewPlayer { name: String }
//!
//! #[batch_tracked]
//! #[derive(Queryable, Selectable)]
//! #[diesel(table_name = players)]
//! struct Player { id: i64, name: String }
//!
//! #[bulk_insertable] // bulk insert without tracking
//! #[derive(Insertable)]
//! #[diesel(table_name = cards)]
//! struct NewCard { player_id: i64, cardid: i32 }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//! conn.batch_execute(
//!     "CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
//!      CREATE TABLE cards (id INTEGER PRIMARY KEY, player_id BIGINT NOT NULL, cardid INT NOT NULL);",
//! )?;
//! batchframework_diesel::add_tracking_column(&mut conn, "players")?;
//!
//! let game = ContextRef::new("games", 1);
//! let mut op = BatchOperation::create_synchronous("deal-cards") // 1: INSERT
//!     .context_object(&game)
//!     .insert(&mut conn)?;
//! let new_players = (0..3).map(|i| NewPlayer { name: format!("p{i}"), batchoperation_id: None });
//! bulk_insert_tracked(&mut conn, &op, new_players)?; // 2: COPY or multi-row INSERT
//! let created: Vec<Player> = Player::in_batch(&op) // 3: SELECT ... WHERE batchoperation_id = op
//!     .select(Player::as_select())
//!     .load(&mut conn)?;
//! let new_cards = created.iter().map(|p| NewCard { player_id: p.id, cardid: 7 });
//! bulk_insert(&mut conn, new_cards)?; // 4: COPY or multi-row INSERT
//! op.finish(&mut conn)?; // 5: UPDATE ... WHERE status = 'running'
//!
//! assert_eq!(created.len(), 3);
//! assert_eq!(cards::table.count().get_result::<i64>(&mut conn)?, 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Run work inline or on workers
//!
//! A [`registry::Registry`] maps operation types to groups of actions. [`Registry::run`] runs a
//! synchronous group inline and records it; an asynchronous one is recorded `unprocessed` for a
//! `worker::Worker` (feature `r2d2`), which claims it from the database (no broker), runs it
//! and records the result, with leases, retries and graceful shutdown.
//!
//! [`Registry::run`]: registry::Registry::run
//!
//! ```
//! use batchframework_diesel::registry::{Registry, RunArgs};
//! use batchframework_diesel::OperationResult;
//! use diesel::connection::SimpleConnection;
//! use diesel::{Connection, SqliteConnection};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::<SqliteConnection>::builder()
//!     .group_with("cleanup", |group| {
//!         group.action_fn("vacuum", |ctx| {
//!             ctx.conn().batch_execute("VACUUM")?; // errors convert with `?`
//!             Ok(json!("done"))
//!         })
//!     })
//!     .group_with("send-report", |group| {
//!         group.asynchronous().action_fn("send", |_| Ok(json!("sent")))
//!     })
//!     .build()?;
//!
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//! let ran = registry.run(&mut conn, "cleanup", RunArgs::new())?;
//! assert_eq!(ran.operation.result(), OperationResult::Successful);
//! let queued = registry.run(&mut conn, "send-report", RunArgs::new())?;
//! assert!(queued.result.is_none()); // recorded for a worker
//! # Ok(())
//! # }
//! ```
//!
//! The `worker` module (feature `r2d2`) shows a worker serving a PostgreSQL pool until SIGTERM.
//!
//! # Modules and main items
//!
//! * [`BatchOperation`], [`Status`], [`OperationResult`]: the model; its lifecycle steps
//!   ([`BatchOperation::create_synchronous`], [`BatchOperation::create_asynchronous`],
//!   [`BatchOperation::mark_as_running`], [`BatchOperation::finish`], ...).
//! * [`ContextObject`] (trait and derive), [`ContextRef`]: what an operation is about.
//! * [`OperationFilter`]: find, count and remove pending operations.
//! * [`batch_tracked`], [`bulk_insertable`], [`bulk_insert_tracked`], [`bulk_insert`],
//!   [`tracking_column_sql`], [`add_tracking_column`]: the 5-statement bulk pattern.
//! * [`registry`]: action groups, run inline or queued. `worker` (feature `r2d2`): the workers.
//! * [`overview`] and [`admin`]: the queues at a glance, and retry, cancel and pause for
//!   operators (what the `batchframework` command line is built on).
//! * [`migrations`], [`run_migrations`], [`pending_migrations`]: the embedded migrations. [`schema`]: the `table!`.
//! * [`Error`]: every error, each saying what to do.
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `postgres` | `PgConnection` support (needs libpq) |
//! | `sqlite` | `SqliteConnection` support, SQLite 3.35+ (a system libsqlite3, or the bundled build via `libsqlite3-sys/bundled`) |
//! | `mysql` | `MysqlConnection` support for MySQL 8.0.16+ and MariaDB 10.6+ (needs libmysqlclient or libmariadb) |
//! | `r2d2` | passing r2d2 `PooledConnection`s wherever a connection is taken, and the `worker` module |
//! | `uuid` | `uuid::Uuid` primary keys for context objects |
//! | `metrics` | the workers' counters, histogram and queue gauges through the `metrics` facade (implies `r2d2`) |
//!
//! No backend is enabled by default; enable the ones your application uses.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

// The code `#[bulk_insertable]` generates names this crate by its name; the batches' child rows
// use it inside the crate too.
extern crate self as batchframework_diesel;

pub mod admin;
mod attempts;
mod backend;
pub mod batch;
mod bulk;
mod completion;
mod context;
mod dependencies;
mod error;
mod filter;
mod lifecycle;
pub mod migrations;
mod operation;
pub mod overview;
mod prune;
mod query;
pub mod registry;
pub mod schema;
mod status;
mod stored_json;
mod tracking;
#[cfg(feature = "r2d2")]
#[cfg_attr(docsrs, doc(cfg(feature = "r2d2")))]
pub mod worker;
pub mod workflow;

pub use backend::{BatchConnection, Dialect, UtcDateTime, UtcTimestamp};
/// Tracks the rows a batch operation inserts: [`bulk_insert_tracked`] tags each row with the
/// operation, and the generated `Model::in_batch(&operation)` selects them back.
///
/// ```
/// use batchframework_diesel::{add_tracking_column, batch_tracked, bulk_insert_tracked, BatchOperation};
/// use diesel::connection::SimpleConnection;
/// use diesel::prelude::*;
///
/// diesel::table! {
///     players (id) { id -> BigInt, name -> Text, batchoperation_id -> Nullable<BigInt>, }
/// }
///
/// #[batch_tracked] // above the derive
/// #[derive(Insertable)]
/// #[diesel(table_name = players)]
/// struct NewPlayer { name: String } // gains `batchoperation_id: Option<i64>`
///
/// #[batch_tracked]
/// #[derive(Queryable, Selectable)]
/// #[diesel(table_name = players)]
/// struct Player { id: i64, name: String }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut conn = SqliteConnection::establish(":memory:")?;
///     batchframework_diesel::run_migrations(&mut conn)?;
///     conn.batch_execute("CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")?;
///     add_tracking_column(&mut conn, "players")?;
///
///     let mut op = BatchOperation::create_synchronous("add-players").insert(&mut conn)?;
///     let new = (0..100).map(|i| NewPlayer { name: format!("player{i}"), batchoperation_id: None });
///     assert_eq!(bulk_insert_tracked(&mut conn, &op, new)?, 100);
///
///     // Rows of another operation, or of none, are not selected back.
///     diesel::insert_into(players::table)
///         .values(NewPlayer { name: "untracked".into(), batchoperation_id: None })
///         .execute(&mut conn)?;
///     let created: Vec<Player> = Player::in_batch(&op)
///         .select(Player::as_select())
///         .order(players::id)
///         .load(&mut conn)?;
///     assert_eq!(created.len(), 100);
///     assert_eq!(created[0].batchoperation_id, Some(op.id()));
///     op.finish(&mut conn)?;
///     Ok(())
/// }
/// ```
pub use batchframework_macros::batch_tracked;
/// Bulk insert with [`bulk_insert`] for rows that are not tracked, such as the cards dealt to
/// the players an operation created (the crate's front page shows the whole pattern).
///
/// ```
/// use batchframework_diesel::{bulk_insert, bulk_insertable};
/// use diesel::connection::SimpleConnection;
/// use diesel::prelude::*;
///
/// diesel::table! {
///     cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
/// }
///
/// #[bulk_insertable] // above the derive
/// #[derive(Insertable)]
/// #[diesel(table_name = cards)]
/// struct NewCard { player_id: i64, cardid: i32 }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut conn = SqliteConnection::establish(":memory:")?;
///     conn.batch_execute(
///         "CREATE TABLE cards (id INTEGER PRIMARY KEY, player_id BIGINT NOT NULL, cardid INT NOT NULL)",
///     )?;
///     let cards = (1..=10).map(|player_id| NewCard { player_id, cardid: 7 });
///     assert_eq!(bulk_insert(&mut conn, cards)?, 10);
///     assert_eq!(cards::table.count().get_result::<i64>(&mut conn)?, 10);
///     Ok(())
/// }
/// ```
pub use batchframework_macros::bulk_insertable;
/// Derives [`ContextObject`](trait@ContextObject) for a Diesel model, so that operations can be
/// about its rows: its type key is the table's name, its id the primary key.
///
/// ```
/// use batchframework_diesel::{BatchOperation, ContextObject};
/// use diesel::prelude::*;
///
/// diesel::table! {
///     games (id) { id -> Integer, name -> Text, }
/// }
///
/// #[derive(Queryable, Identifiable, ContextObject)]
/// #[diesel(table_name = games)]
/// struct Game { id: i32, name: String }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let game = Game { id: 1, name: "chess".into() };
///     assert_eq!(game.context_object_type(), "games");
///     assert_eq!(game.context_object_id().as_str(), "1");
///
///     let mut conn = SqliteConnection::establish(":memory:")?;
///     batchframework_diesel::run_migrations(&mut conn)?;
///     let op = BatchOperation::create_synchronous("add-players")
///         .context_object(&game)
///         .insert(&mut conn)?;
///     assert_eq!(op.context_object_type(), Some("games"));
///     assert_eq!(op.context_object_id(), Some("1"));
///     Ok(())
/// }
/// ```
pub use batchframework_macros::ContextObject;
pub use bulk::{
    bulk_insert, bulk_insert_tracked, bulk_insert_tracked_or_fail, BulkInsertable, EncodedLen,
};
pub use context::{ContextId, ContextObject, ContextRef};
pub use error::{Error, Result};
pub use filter::{OperationFilter, OperationOrder};
pub use lifecycle::{NewOperation, DEFAULT_QUEUE, HIGH_PRIORITY_QUEUE, MAX_KEY_LENGTH};
pub use migrations::{pending_migrations, run_migrations};
pub use operation::BatchOperation;
pub use prune::Prune;
pub use status::{OperationResult, Status, UnknownValue};
pub use tracking::{
    add_tracking_column, tracking_column_sql, BatchTracked, TrackingColumnSql, TRACKING_COLUMN,
};

/// Diesel, as this crate uses it; `#[batch_tracked]` expands to paths through it.
#[doc(hidden)]
pub use diesel;

/// What `#[batch_tracked]` expands to, and limits the workspace's tests and benchmark check
/// against; not a stable API.
#[doc(hidden)]
pub mod __private {
    /// PostgreSQL's streamed binary `COPY`, which the generated bulk inserts call.
    #[cfg(feature = "postgres")]
    pub use crate::backend::copy::{
        copy_rows, CopyField, CopyRow, CopyValue, EncodeError, FallbackCopy, KnownCopy,
    };
    pub use crate::bulk::{chunk_rows, BulkInsertRows, BulkRow, FallbackLen, KnownLen, Len};

    /// The most bind parameters one multi-row `INSERT` carries on SQLite, as bulk inserts use it.
    pub const SQLITE_MAX_BINDS: usize = crate::backend::SQLITE_MAX_BINDS;
    /// The most bind parameters one multi-row `INSERT` carries on MySQL/MariaDB, as bulk inserts
    /// use it.
    pub const MYSQL_MAX_BINDS: usize = crate::backend::MYSQL_BULK_BINDS;

    /// The plans of the statements that must stay cheap at scale, for the plan tests.
    #[cfg(feature = "r2d2")]
    pub use crate::backend::worker::explain::query_plans;
    /// Takes the keeper's pruning lock on `conn`'s session without waiting (for the tests).
    #[cfg(feature = "r2d2")]
    pub fn try_lock_pruning<C: crate::worker::WorkerConnection>(
        conn: &mut C,
    ) -> diesel::QueryResult<bool> {
        crate::backend::WorkerStorage::try_lock_pruning(conn)
    }
    /// Releases the keeper's pruning lock on `conn`'s session (for the tests).
    #[cfg(feature = "r2d2")]
    pub fn unlock_pruning<C: crate::worker::WorkerConnection>(
        conn: &mut C,
    ) -> diesel::QueryResult<()> {
        crate::backend::WorkerStorage::unlock_pruning(conn)
    }
    /// The claim's read of due work, as SQL text (for the benchmark's timings).
    #[cfg(feature = "r2d2")]
    pub use crate::backend::worker::sql::due_sql;
}

// The database backends, in one place: the code `#[batch_tracked]` and `#[bulk_insertable]`
// generate for each backend (a `BulkInsertRows<Connection>` impl) comes from here, and the macro
// crate names no backend. The generated code defines a local `macro_rules!` callback with one arm
// per way of bulk inserting (`copy_from`: PostgreSQL's binary `COPY`; `insert_into`: a multi-row
// `INSERT`) and calls `__batchframework_for_each_backend!(callback)`, which calls
// `callback! { <how>, <connection type> }` once for each backend this crate was built with.
//
// Adding a backend: a line in `__batchframework_for_each_backend!` and its `#[cfg]` pair in
// `__backend`. The pairs are needed because the features must be tested here, when this crate is
// compiled (a `#[cfg]` in an expansion would test the application's features), and a
// `macro_rules!` arm cannot carry a `#[cfg]`: `__backend::<name>!` is this crate's
// `__batchframework_keep!` (which emits its input) or `__batchframework_skip!` (which drops it).

/// Calls `$callback! { <how>, <connection type> }` for every backend this crate was built with;
/// what `#[batch_tracked]` and `#[bulk_insertable]` expand to. Not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_for_each_backend {
    ($callback:ident) => {
        $crate::__backend::postgres! { $callback! { copy_from, $crate::diesel::PgConnection } }
        $crate::__backend::sqlite! { $callback! { insert_into, $crate::diesel::SqliteConnection } }
        $crate::__backend::mysql! { $callback! { insert_into, $crate::diesel::MysqlConnection } }
    };
}

/// Each backend's `#[cfg]`, as a macro that keeps or drops its input; see
/// `__batchframework_for_each_backend!`.
#[doc(hidden)]
pub mod __backend {
    #[cfg(feature = "postgres")]
    pub use crate::__batchframework_keep as postgres;
    #[cfg(not(feature = "postgres"))]
    pub use crate::__batchframework_skip as postgres;

    #[cfg(feature = "sqlite")]
    pub use crate::__batchframework_keep as sqlite;
    #[cfg(not(feature = "sqlite"))]
    pub use crate::__batchframework_skip as sqlite;

    #[cfg(feature = "mysql")]
    pub use crate::__batchframework_keep as mysql;
    #[cfg(not(feature = "mysql"))]
    pub use crate::__batchframework_skip as mysql;
}

/// Emits its input: an enabled backend, in `__backend`.
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_keep {
    ($($item:tt)*) => { $($item)* };
}

/// Drops its input: a disabled backend, in `__backend`.
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_skip {
    ($($item:tt)*) => {};
}
