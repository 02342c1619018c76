//! Track batch and background operations in Diesel applications.
//!
//! A port of the Django module `ievv_batchframework`. Each batch or background operation is a row
//! of `batchframework_batchoperation` ([`BatchOperation`]) recording its type, the object it is
//! about (its [`ContextObject`]), who started it, JSON input and output, and its lifecycle
//! `unprocessed → running → finished` with a result of `successful` or `failed`.
//!
//! ```
//! use batchframework_diesel::{BatchOperation, ContextRef, OperationResult, Status};
//! use diesel::{Connection, SqliteConnection};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! batchframework_diesel::run_migrations(&mut conn)?;
//!
//! // Work done by a worker later: recorded as `unprocessed`.
//! let game = ContextRef::new("games", 1);
//! let mut op = BatchOperation::create_asynchronous("deal-cards")
//!     .context_object(&game)
//!     .input(&serde_json::json!({"cards_per_player": 1}))
//!     .insert(&mut conn)?;
//!
//! op.mark_as_running(&mut conn)?;
//! op.finish(&mut conn)?;
//! assert_eq!((op.status(), op.result()), (Status::Finished, OperationResult::Successful));
//!
//! // Illegal steps are refused and change nothing.
//! assert!(op.mark_as_running(&mut conn).is_err());
//! assert_eq!(op.status(), Status::Finished);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `postgres` | `PgConnection` support (needs libpq) |
//! | `sqlite` | `SqliteConnection` support, SQLite 3.35+ (a system libsqlite3, or the bundled build via `libsqlite3-sys/bundled`) |
//! | `mysql` | `MysqlConnection` support for MySQL 8.0.16+ and MariaDB 10.6+ (needs libmysqlclient or libmariadb) |
//! | `r2d2` | passing r2d2 `PooledConnection`s wherever a connection is taken, and the [`worker`] module |
//! | `uuid` | `uuid::Uuid` primary keys for context objects |
//!
//! No backend is enabled by default; enable the ones your application uses.

#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

mod backend;
mod bulk;
mod context;
mod error;
mod lifecycle;
pub mod migrations;
mod operation;
mod query;
pub mod registry;
pub mod schema;
mod tracking;
#[cfg(feature = "r2d2")]
pub mod worker;

pub use backend::{
    BatchConnection, Dialect, UtcDateTime, UtcTimestamp, MYSQL_MAX_BINDS, SQLITE_MAX_BINDS,
};
pub use batchframework_macros::ContextObject;
pub use batchframework_macros::{batch_tracked, bulk_insertable};
pub use bulk::{
    bulk_insert, bulk_insert_tracked, bulk_insert_tracked_or_fail, BulkInsertable, EncodedLen,
};
pub use context::{ContextId, ContextObject, ContextRef};
pub use error::{Error, Result};
pub use lifecycle::{NewOperation, DEFAULT_QUEUE, MAX_KEY_LENGTH};
pub use migrations::run_migrations;
pub use operation::{BatchOperation, OperationResult, Status, UnknownValue};
pub use query::OperationFilter;
pub use tracking::{
    add_tracking_column, tracking_column_sql, BatchTracked, TrackingColumnSql, TRACKING_COLUMN,
};

/// Diesel, as this crate uses it; `#[batch_tracked]` expands to paths through it.
#[doc(hidden)]
pub use diesel;

/// What `#[batch_tracked]` expands to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bulk::{BulkInsertRows, BulkRow, EncodedLen, FallbackLen, KnownLen, Len};
}

/// Emits its input only when this crate has the `postgres` feature, so the code `#[batch_tracked]`
/// generates in an application compiles whatever backends were enabled.
#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_postgres {
    ($($item:tt)*) => { $($item)* };
}

/// See the `postgres`-enabled variant.
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_postgres {
    ($($item:tt)*) => {};
}

/// Emits its input only when this crate has the `sqlite` feature, so the code `#[batch_tracked]`
/// generates in an application compiles whatever backends were enabled.
#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_sqlite {
    ($($item:tt)*) => { $($item)* };
}

/// See the `sqlite`-enabled variant.
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_sqlite {
    ($($item:tt)*) => {};
}

/// Emits its input only when this crate has the `mysql` feature, so the code `#[batch_tracked]`
/// generates in an application compiles whatever backends were enabled.
#[cfg(feature = "mysql")]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_mysql {
    ($($item:tt)*) => { $($item)* };
}

/// See the `mysql`-enabled variant.
#[cfg(not(feature = "mysql"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __batchframework_if_mysql {
    ($($item:tt)*) => {};
}
