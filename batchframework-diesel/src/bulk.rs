//! Bulk insert: any number of rows in as few statements as the backend allows, atomically.
//!
//! * PostgreSQL: one binary `COPY ... FROM STDIN`, whatever the number of rows, streamed: each
//!   row is encoded as the iterator yields it and sent in 64 KiB pieces, so memory does not grow
//!   with the batch. (A row type with a field the library cannot encode itself, one with your
//!   own `ToSql` or `serialize_as`, goes through Diesel's own `COPY` encoding, which collects the
//!   batch first.)
//! * SQLite and MySQL/MariaDB: multi-row `INSERT`s of up to 32,766 values on SQLite (its
//!   bind-parameter limit) and 8,192 on MySQL/MariaDB (which runs such statements with less work
//!   per row than ones near its limit of 65,535) and, on MySQL, small enough that the
//!   statement's packet stays under the server's `max_allowed_packet` (read from the server once
//!   per call), so a batch of wide rows is split instead of killing the connection.
//!
//! Every call runs in a transaction (a savepoint inside the caller's): if any statement fails,
//! none of the batch is left behind and the database's error is returned.
//!
//! Row types get their bulk-insert implementation from `#[batch_tracked]` (rows tagged with an
//! operation) or `#[bulk_insertable]` (untracked rows). The crate's front page shows the whole
//! Game/Player/Card pattern.

use crate::backend::{BatchConnection, Storage};
use crate::error::{Error, Result};
use crate::operation::BatchOperation;
use crate::tracking::BatchTracked;

pub use crate::backend::bulk_rows::{BulkInsertRows, BulkRow};
pub use private::{FallbackLen, KnownLen, Len};

/// A row type that can be bulk inserted over connection `C`: what `#[batch_tracked]` implements
/// on an `Insertable` struct for each backend the library has enabled.
pub trait BulkInsertable<C>: BulkRow + BulkInsertRows<C> {}

impl<C, R: BulkRow + BulkInsertRows<C>> BulkInsertable<C> for R {}

/// Inserts `rows`, untracked, and returns how many were inserted.
///
/// Rows are taken from `rows` as they are sent: on PostgreSQL streamed into the `COPY` (for row
/// types whose fields are integers, floats, booleans, text, bytes, chrono dates and times, JSON
/// or UUIDs, or `Option`s or references of them), elsewhere chunk by chunk, so the batch is never
/// held in memory whole.
///
/// Statements: one `COPY` on PostgreSQL; on SQLite and MySQL one multi-row `INSERT` per chunk
/// of `⌊limit / columns⌋` rows (values per statement: SQLite 32,766, MySQL 8,192; fewer rows
/// per chunk on MySQL when they would not fit in 75% of `max_allowed_packet`, sized with
/// [`EncodedLen`]), plus on MySQL one
/// `SELECT @@max_allowed_packet`. All in one transaction, or a savepoint inside the caller's:
/// a failing chunk leaves none of the batch behind and returns the database's error.
///
/// [`bulk_insert_tracked`]'s example uses both.
pub fn bulk_insert<C, R, I>(conn: &mut C, rows: I) -> Result<usize>
where
    C: BatchConnection,
    R: BulkInsertable<C>,
    I: IntoIterator<Item = R>,
{
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(0); // nothing to do: no transaction, no statement
    }
    conn.transaction(|conn| insert_all(conn, rows))
}

/// Inserts `rows` tagged with `operation`'s id (whatever their `batchoperation_id` was), so
/// `Model::in_batch(operation)` selects them back; returns how many were inserted.
///
/// Players tagged with the operation, selected back, and one untracked card each with
/// [`bulk_insert`]:
///
/// ```
/// # use batchframework_diesel::{add_tracking_column, batch_tracked, bulk_insertable};
/// use batchframework_diesel::{bulk_insert, bulk_insert_tracked, BatchOperation};
/// # use diesel::connection::SimpleConnection;
/// use diesel::prelude::*;
/// #
/// # diesel::table! {
/// #     players (id) { id -> BigInt, name -> Text, batchoperation_id -> Nullable<BigInt>, }
/// # }
/// # diesel::table! {
/// #     cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
/// # }
/// # #[batch_tracked]
/// # #[derive(Insertable)]
/// # #[diesel(table_name = players)]
/// # struct NewPlayer { name: String }
/// # #[batch_tracked]
/// # #[derive(Queryable, Selectable)]
/// # #[diesel(table_name = players)]
/// # struct Player { id: i64, name: String }
/// # #[bulk_insertable]
/// # #[derive(Insertable)]
/// # #[diesel(table_name = cards)]
/// # struct NewCard { player_id: i64, cardid: i32 }
/// #
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// # conn.batch_execute(
/// #     "CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
/// #      CREATE TABLE cards (id INTEGER PRIMARY KEY, player_id BIGINT NOT NULL, cardid INT NOT NULL);",
/// # )?;
/// # add_tracking_column(&mut conn, "players")?;
/// let op = BatchOperation::create_synchronous("deal-cards").insert(&mut conn)?;
/// let new = (0..500).map(|i| NewPlayer { name: format!("p{i}"), batchoperation_id: None });
/// assert_eq!(bulk_insert_tracked(&mut conn, &op, new)?, 500);
///
/// let created: Vec<Player> = Player::in_batch(&op)
///     .select(Player::as_select())
///     .order(players::id)
///     .load(&mut conn)?;
/// assert!(created.iter().all(|p| p.batchoperation_id == Some(op.id())));
///
/// let cards = created.iter().map(|p| NewCard { player_id: p.id, cardid: 7 });
/// assert_eq!(bulk_insert(&mut conn, cards)?, 500);
/// # Ok(())
/// # }
/// ```
pub fn bulk_insert_tracked<C, R, I>(
    conn: &mut C,
    operation: &BatchOperation,
    rows: I,
) -> Result<usize>
where
    C: BatchConnection,
    R: BulkInsertable<C> + BatchTracked,
    I: IntoIterator<Item = R>,
{
    let id = operation.id();
    bulk_insert(
        conn,
        rows.into_iter().map(|mut row| {
            row.set_batch_operation_id(Some(id));
            row
        }),
    )
}

/// The bulk step of the 5-query pattern with its failure recorded: inserts `rows` tagged with
/// `operation`; if that fails, the operation is finished as `failed` with the error in its output
/// data, written after the insert was rolled back, so the record survives the rollback. The
/// insert's error is returned either way.
///
/// It must run outside any transaction of yours, since inside one the failure record would be
/// rolled back with it: there it returns [`Error::InsideTransaction`] without doing anything.
/// Use [`bulk_insert_tracked`] and record the failure yourself after your rollback instead.
pub fn bulk_insert_tracked_or_fail<C, R, I>(
    conn: &mut C,
    operation: &mut BatchOperation,
    rows: I,
) -> Result<usize>
where
    C: BatchConnection,
    R: BulkInsertable<C> + BatchTracked,
    I: IntoIterator<Item = R>,
{
    use diesel::connection::TransactionManager;
    let depth = C::TransactionManager::transaction_manager_status_mut(conn).transaction_depth()?;
    if depth.is_some() {
        return Err(Error::InsideTransaction);
    }
    match bulk_insert_tracked(conn, operation, rows) {
        Ok(count) => Ok(count),
        Err(error) => {
            let record = serde_json::json!({ "error": error.to_string() });
            // The insert's error is what the caller needs; a failure to record it is secondary
            // and reported inside it only if the record cannot be written.
            match operation.finish_failed(conn, &record) {
                Ok(()) => Err(error),
                Err(record_error) => Err(Error::FailureNotRecorded {
                    error: Box::new(error),
                    record_error: Box::new(record_error),
                }),
            }
        }
    }
}

fn insert_all<C, R>(conn: &mut C, rows: impl Iterator<Item = R>) -> Result<usize>
where
    C: BatchConnection,
    R: BulkInsertable<C>,
{
    let dialect = <C::Storage as Storage>::DIALECT;
    // A query only where the server limits packets (MySQL); `None` elsewhere.
    let max_packet = match dialect.bulk_binds() {
        Some(_) => conn.storage().max_packet_bytes()?,
        None => None,
    };
    crate::backend::bulk_rows::insert_in_chunks(conn, dialect, max_packet, rows)
}

/// Rows of `columns` values in one full multi-row `INSERT` over connection `C`: as many as its
/// bind budget takes (SQLite 32,766, MySQL/MariaDB 8,192), at least one. Where `C` takes
/// every row in one `COPY` (PostgreSQL), `usize::MAX`. The generated bulk inserts send a chunk of
/// exactly this many rows as an array, whose statement Diesel prepares once per connection.
pub const fn chunk_rows<C: BatchConnection>(columns: usize) -> usize {
    crate::backend::bulk_rows::rows_per_chunk(<C::Storage as Storage>::DIALECT, columns)
}

/// How many bytes a field value takes on the wire, so that bulk inserts on MySQL/MariaDB can
/// keep each statement under the server's `max_allowed_packet`.
///
/// `#[batch_tracked]` and `#[bulk_insertable]` size every row by adding up its fields' sizes.
/// This trait gives the exact size of strings, byte vectors, numbers, booleans, dates, JSON and
/// `Option`s and references of them. A field of any other type is estimated from its in-memory
/// size plus a margin, which misses the data it owns on the heap: implement this trait for your
/// own field types that own large buffers (a newtype over `String` or `Vec<u8>`), or MySQL may
/// receive a statement larger than it accepts and drop the connection. Other backends do not
/// use the sizes.
///
/// A newtype over `String`, used as a field of a bulk-inserted row (with Diesel's `ToSql` for
/// it, not shown):
///
/// ```
/// use batchframework_diesel::EncodedLen;
///
/// struct Body(String);
///
/// impl EncodedLen for Body {
///     fn encoded_len(&self) -> usize {
///         self.0.encoded_len() // the text's bytes, as for a `String` field
///     }
/// }
///
/// assert_eq!(Body("hello".to_owned()).encoded_len(), 5);
/// assert_eq!(Some(Body("hi".to_owned())).encoded_len(), 2); // `Option`s of it come free
/// ```
pub trait EncodedLen {
    /// Bytes of the value on the wire (its data, without the protocol's framing).
    fn encoded_len(&self) -> usize;
}

impl EncodedLen for str {
    fn encoded_len(&self) -> usize {
        self.len()
    }
}
impl EncodedLen for String {
    fn encoded_len(&self) -> usize {
        self.len()
    }
}
impl EncodedLen for [u8] {
    fn encoded_len(&self) -> usize {
        self.len()
    }
}
impl EncodedLen for Vec<u8> {
    fn encoded_len(&self) -> usize {
        self.len()
    }
}
impl<T: EncodedLen + ?Sized> EncodedLen for &T {
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}
impl<T: EncodedLen> EncodedLen for Option<T> {
    fn encoded_len(&self) -> usize {
        self.as_ref().map_or(0, EncodedLen::encoded_len)
    }
}
macro_rules! fixed_len {
    ($($ty:ty),*) => {$(
        impl EncodedLen for $ty {
            fn encoded_len(&self) -> usize { std::mem::size_of_val(self) }
        }
    )*};
}
fixed_len!(bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);
impl EncodedLen for chrono::NaiveDateTime {
    fn encoded_len(&self) -> usize {
        12
    }
}
impl EncodedLen for chrono::NaiveDate {
    fn encoded_len(&self) -> usize {
        5
    }
}
impl EncodedLen for serde_json::Value {
    fn encoded_len(&self) -> usize {
        self.to_string().len()
    }
}

/// Items `#[batch_tracked]` generates code against; not a stable API.
mod private {
    use std::mem::size_of_val;

    use super::EncodedLen;

    /// A field value whose wire size is being estimated.
    pub struct Len<'a, T: ?Sized>(pub &'a T);

    /// Exact sizes for the types the library knows.
    pub trait KnownLen {
        /// Bytes of the value on the wire.
        fn encoded_len(&self) -> usize;
    }

    /// Any other field type: its in-memory size plus a margin.
    pub trait FallbackLen {
        /// Bytes of the value on the wire, estimated.
        fn encoded_len(&self) -> usize;
    }

    impl<T: ?Sized> FallbackLen for Len<'_, T> {
        fn encoded_len(&self) -> usize {
            size_of_val(self.0) + 64
        }
    }

    impl<T: EncodedLen + ?Sized> KnownLen for &Len<'_, T> {
        fn encoded_len(&self) -> usize {
            self.0.encoded_len()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        struct Custom(#[allow(dead_code)] [u8; 40]);

        #[test]
        #[allow(clippy::needless_borrow)] // the `&&` is the specialisation under test
        fn known_types_are_exact_and_others_estimated() {
            let text = String::from("hello");
            assert_eq!((&&Len(&text)).encoded_len(), 5);
            assert_eq!((&&Len(&Some(7_i64))).encoded_len(), 8);
            assert_eq!((&&Len(&None::<String>)).encoded_len(), 0);
            let custom = Custom([0; 40]);
            assert_eq!((&&Len(&custom)).encoded_len(), 40 + 64);
        }
    }
}
