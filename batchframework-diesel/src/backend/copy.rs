//! PostgreSQL's binary `COPY ... FROM STDIN`, streamed: rows are encoded one at a time into a
//! small reused buffer and handed to libpq as the caller's iterator yields them, so a bulk insert
//! of any size runs in constant memory, as one statement.
//!
//! Diesel's `copy_from(..).from_insertable(rows)` encodes with each field's `ToSql`, but takes
//! the rows as a `Vec`, and Diesel keeps its encoder to itself; its `from_raw_data` takes a
//! writer instead. This module writes PostgreSQL's binary format to that writer for the field
//! types whose wire format it knows ([`CopyValue`]: integers, floats, booleans, text, bytes,
//! chrono's dates and times, JSON, UUIDs, and `Option`s and references of them), byte for byte
//! as Diesel's `ToSql` would. A row with any other field type (your own `ToSql` types, or a
//! `serialize_as` field) cannot be encoded here: its batch goes through Diesel's
//! `from_insertable`, collected first, as before.
//!
//! `#[batch_tracked]` and `#[bulk_insertable]` generate the calls: [`copy_rows`] with a closure
//! that writes each field through [`CopyField`] (the exact encoding where [`CopyValue`] has one,
//! [`FallbackCopy`] otherwise, chosen by autoref specialisation).

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use diesel::pg::{CopyFormat, CopyTarget};
use diesel::prelude::ExecuteCopyFromDsl;
use diesel::sql_types::{
    BigInt, Binary, Bool, Date, Double, Float, Integer, Json, Jsonb, Nullable, SmallInt, Text,
    Time, Timestamp, Timestamptz,
};
use diesel::PgConnection;

use crate::error::{Error, Result};

/// Encoded bytes buffered before they are handed to libpq (one `CopyData` message each).
const FLUSH_AT: usize = 64 * 1024;

/// The binary format's signature, then 32 bits of flags (no OIDs) and an empty header extension.
const HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The binary format's trailer: a field count of -1.
const TRAILER: [u8; 2] = (-1_i16).to_be_bytes();

/// A value that could not be encoded (Diesel reports the same failures of its own `ToSql`).
pub type EncodeError = Box<dyn std::error::Error + Send + Sync>;

/// A Rust value's PostgreSQL binary wire format for SQL type `ST`, as Diesel's
/// `ToSql<ST, Pg>` writes it.
pub trait CopyValue<ST> {
    /// Appends the value's bytes to `out`; `false` for SQL `NULL` (nothing appended).
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError>;
}

impl<ST, T: CopyValue<ST> + ?Sized> CopyValue<ST> for &T {
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        (**self).copy_to(out)
    }
}

impl<ST, T: CopyValue<ST> + ?Sized> CopyValue<ST> for Box<T> {
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        (**self).copy_to(out)
    }
}

impl<ST, T> CopyValue<ST> for Cow<'_, T>
where
    T: CopyValue<ST> + ToOwned + ?Sized,
    T::Owned: CopyValue<ST>,
{
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        match self {
            Cow::Borrowed(value) => value.copy_to(out),
            Cow::Owned(value) => value.copy_to(out),
        }
    }
}

impl<ST, T: CopyValue<ST>> CopyValue<Nullable<ST>> for Option<T> {
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        match self {
            Some(value) => value.copy_to(out),
            None => Ok(false),
        }
    }
}

/// `CopyValue<ST>` for a type, and `CopyValue<Nullable<ST>>` for it too (a value for a nullable
/// column), as Diesel's `AsExpression` derive does per type.
macro_rules! copy_value {
    ($($ty:ty => $($st:ty),+ : |$value:ident, $out:ident| $body:expr;)*) => {$($(
        impl CopyValue<$st> for $ty {
            fn copy_to(&self, $out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
                let $value = self;
                $body;
                Ok(true)
            }
        }
        impl CopyValue<Nullable<$st>> for $ty {
            fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
                <Self as CopyValue<$st>>::copy_to(self, out)
            }
        }
    )+)*};
}

copy_value! {
    bool => Bool: |value, out| out.push(u8::from(*value));
    i16 => SmallInt: |value, out| out.extend_from_slice(&value.to_be_bytes());
    i32 => Integer: |value, out| out.extend_from_slice(&value.to_be_bytes());
    i64 => BigInt: |value, out| out.extend_from_slice(&value.to_be_bytes());
    f32 => Float: |value, out| out.extend_from_slice(&value.to_be_bytes());
    f64 => Double: |value, out| out.extend_from_slice(&value.to_be_bytes());
    str => Text, diesel::pg::sql_types::Citext: |value, out| out.extend_from_slice(value.as_bytes());
    String => Text, diesel::pg::sql_types::Citext: |value, out| out.extend_from_slice(value.as_bytes());
    [u8] => Binary: |value, out| out.extend_from_slice(value);
    Vec<u8> => Binary: |value, out| out.extend_from_slice(value);
    NaiveDateTime => Timestamp, Timestamptz: |value, out| {
        out.extend_from_slice(&timestamp_micros(value)?.to_be_bytes())
    };
    NaiveDate => Date: |value, out| {
        let days = value.signed_duration_since(pg_epoch().date()).num_days();
        out.extend_from_slice(&i32::try_from(days)?.to_be_bytes())
    };
    NaiveTime => Time: |value, out| {
        let micros = value
            .signed_duration_since(NaiveTime::MIN)
            .num_microseconds()
            .ok_or("a time of day out of range")?;
        out.extend_from_slice(&micros.to_be_bytes())
    };
    serde_json::Value => Json: |value, out| serde_json::to_writer(&mut *out, value)?;
    serde_json::Value => Jsonb: |value, out| {
        out.push(1); // jsonb's binary format version
        serde_json::to_writer(&mut *out, value)?
    };
}

#[cfg(feature = "uuid")]
copy_value! {
    uuid::Uuid => diesel::sql_types::Uuid: |value, out| out.extend_from_slice(value.as_bytes());
}

impl<Tz: TimeZone> CopyValue<Timestamptz> for DateTime<Tz> {
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        <NaiveDateTime as CopyValue<Timestamp>>::copy_to(&self.naive_utc(), out)
    }
}

impl<Tz: TimeZone> CopyValue<Nullable<Timestamptz>> for DateTime<Tz> {
    fn copy_to(&self, out: &mut Vec<u8>) -> std::result::Result<bool, EncodeError> {
        <Self as CopyValue<Timestamptz>>::copy_to(self, out)
    }
}

/// PostgreSQL's epoch: 2000-01-01 00:00:00.
fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN)
}

/// Microseconds since PostgreSQL's epoch, failing as Diesel's `ToSql<Timestamp, Pg>` does.
fn timestamp_micros(value: &NaiveDateTime) -> std::result::Result<i64, EncodeError> {
    value
        .signed_duration_since(pg_epoch())
        .num_microseconds()
        .ok_or_else(|| format!("{value:?} as microseconds is too large to fit in an i64").into())
}

/// A row's field, with the SQL type of its column, as the generated code encodes it.
pub struct CopyField<'a, ST, T: ?Sized>(&'a T, std::marker::PhantomData<ST>);

impl<'a, ST, T: ?Sized> CopyField<'a, ST, T> {
    /// The field `value` of a column of SQL type `ST`.
    pub fn new(value: &'a T) -> Self {
        CopyField(value, std::marker::PhantomData)
    }
}

/// A field whose encoding this module knows.
pub trait KnownCopy {
    /// Whether the field can be encoded here: `true`.
    fn streams(&self) -> bool;
    /// Appends the field (length and bytes, or the length -1 for `NULL`).
    fn write_field(&self, out: &mut Vec<u8>) -> std::result::Result<(), EncodeError>;
}

/// A field of any other type: its row goes through Diesel's `from_insertable`.
pub trait FallbackCopy {
    /// Whether the field can be encoded here: `false`.
    fn streams(&self) -> bool;
    /// Never called for such a row (`streams` is checked first); an error if it were.
    fn write_field(&self, out: &mut Vec<u8>) -> std::result::Result<(), EncodeError>;
}

impl<ST, T: CopyValue<ST> + ?Sized> KnownCopy for &CopyField<'_, ST, T> {
    fn streams(&self) -> bool {
        true
    }

    fn write_field(&self, out: &mut Vec<u8>) -> std::result::Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&(-1_i32).to_be_bytes());
        if self.0.copy_to(out)? {
            let length = i32::try_from(out.len() - start - 4).map_err(|_| {
                format!(
                    "a value of {} bytes is larger than PostgreSQL accepts in a field",
                    out.len() - start - 4
                )
            })?;
            out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        }
        Ok(())
    }
}

impl<ST, T: ?Sized> FallbackCopy for CopyField<'_, ST, T> {
    fn streams(&self) -> bool {
        false
    }

    fn write_field(&self, _out: &mut Vec<u8>) -> std::result::Result<(), EncodeError> {
        Err("this field's type has no binary COPY encoding in batchframework".into())
    }
}

/// A row `#[batch_tracked]` or `#[bulk_insertable]` can encode for a binary `COPY`: generated
/// for PostgreSQL, field by field through [`CopyField`].
pub trait CopyRow {
    /// Fields per row (the columns copied).
    const FIELDS: i16;
    /// Whether every field can be encoded here (a constant of the row type, asked of the
    /// first row).
    fn streams(&self) -> bool;
    /// Appends the row's fields, in the columns' order.
    fn write_fields(&self, out: &mut Vec<u8>) -> std::result::Result<(), EncodeError>;
}

/// What the COPY callback keeps between Diesel's calls (it is a `Fn`, called once).
struct Source<I> {
    rows: Option<I>,
    /// The first encoding failure: reported as it is, rather than as the server's "COPY from
    /// stdin failed" with the failure's text.
    failure: Option<EncodeError>,
}

/// Inserts `rows` into `columns` (a tuple of `table`'s columns, the rows' fields in order) with
/// one binary `COPY`, encoding each row as the iterator yields it. If the first row cannot be
/// encoded here ([`CopyRow::streams`]: a field type without a [`CopyValue`]), the rows are
/// collected and inserted by `collected` (Diesel's `from_insertable`) instead.
///
/// Returns the number of rows the server copied. A row that fails to encode ends the `COPY`
/// (the server discards what it received; the caller's transaction rolls back) and its error is
/// returned as `Error::Database(SerializationError)`, as Diesel returns a failing `ToSql`.
pub fn copy_rows<T, Cols, R, I, F>(
    conn: &mut PgConnection,
    table: T,
    columns: Cols,
    rows: I,
    collected: F,
) -> Result<usize>
where
    T: diesel::Table,
    Cols: CopyTarget<Table = T>,
    R: CopyRow,
    I: Iterator<Item = R>,
    F: FnOnce(&mut PgConnection, Vec<R>) -> diesel::QueryResult<usize>,
{
    let mut rows = rows.peekable();
    match rows.peek() {
        None => return Ok(0),
        Some(first) if !first.streams() => return Ok(collected(conn, rows.collect())?),
        Some(_) => {}
    }
    let source = RefCell::new(Source {
        rows: Some(rows),
        failure: None,
    });
    let copied = diesel::copy_from(table)
        .from_raw_data(columns, |sink: &mut dyn Write| {
            let mut source = source.borrow_mut();
            let rows = source
                .rows
                .take()
                .ok_or_else(|| serialization("the COPY callback ran twice".into()))?;
            match send(sink, rows) {
                Ok(()) => Ok(()),
                Err(Failure::Sink(error)) => Err(error),
                Err(Failure::Encode(error)) => {
                    let reported = serialization(error.to_string().into());
                    source.failure = Some(error);
                    Err(reported)
                }
            }
        })
        .with_format(CopyFormat::Binary)
        .execute(conn);
    match (copied, source.into_inner().failure) {
        (_, Some(failure)) => Err(Error::Database(diesel::result::Error::SerializationError(
            failure,
        ))),
        (copied, None) => Ok(copied?),
    }
}

/// Why sending the rows stopped.
enum Failure {
    /// A row could not be encoded.
    Encode(EncodeError),
    /// libpq refused the data (the connection failed); the server's error follows.
    Sink(diesel::result::Error),
}

/// Writes the header, every row, and the trailer to `sink`, through a buffer flushed every
/// [`FLUSH_AT`] bytes.
fn send<R: CopyRow>(
    sink: &mut dyn Write,
    rows: impl Iterator<Item = R>,
) -> std::result::Result<(), Failure> {
    let mut buffer = Vec::with_capacity(FLUSH_AT + FLUSH_AT / 4);
    buffer.extend_from_slice(&HEADER);
    for row in rows {
        buffer.extend_from_slice(&R::FIELDS.to_be_bytes());
        row.write_fields(&mut buffer).map_err(Failure::Encode)?;
        if buffer.len() >= FLUSH_AT {
            write(sink, &buffer)?;
            buffer.clear();
            // A very wide row grew it: give the memory back rather than keep it for the rest.
            buffer.shrink_to(4 * FLUSH_AT);
        }
    }
    buffer.extend_from_slice(&TRAILER);
    write(sink, &buffer)
}

fn write(sink: &mut dyn Write, bytes: &[u8]) -> std::result::Result<(), Failure> {
    sink.write_all(bytes)
        .map_err(|error| Failure::Sink(serialization(Box::new(error))))
}

fn serialization(error: EncodeError) -> diesel::result::Error {
    diesel::result::Error::SerializationError(error)
}
