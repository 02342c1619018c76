//! The row traits the bulk inserts are generated against, and the loop that sends rows in
//! statements sized to the backend: one streamed `COPY` where the backend takes any number of
//! rows, multi-row `INSERT`s within its bind and packet limits elsewhere. Used by
//! [`bulk_insert`](crate::bulk_insert) and by a batch's enqueue (`Storage::insert_children`).

use crate::error::{Error, Result};

/// Protocol bytes per bound value besides its data (type, null bit, length prefix), as budgeted.
const PER_VALUE_OVERHEAD: usize = 10;

/// The shape of a bulk-insertable row.
pub trait BulkRow {
    /// Bound values per row (the struct's insertable fields).
    const COLUMNS: usize;
    /// Approximately how many bytes the row's values take on the wire.
    fn encoded_len(&self) -> usize;
}

/// Inserts a batch of rows in one statement on connection `C`. The rows are passed owned:
/// Diesel implements `Insertable` for owned rows in every case (with `serialize_as` fields
/// only for those).
pub trait BulkInsertRows<C> {
    /// One `COPY` (PostgreSQL) or multi-row `INSERT` of `rows`.
    fn insert_rows(conn: &mut C, rows: Vec<Self>) -> diesel::QueryResult<usize>
    where
        Self: Sized;

    /// Every row of `rows` in one statement where the backend takes any number (PostgreSQL's
    /// `COPY`): streamed as the iterator yields them where the row can be encoded by the
    /// library (generated for PostgreSQL), else collected for [`insert_rows`](Self::insert_rows).
    fn insert_iter<I>(conn: &mut C, rows: I) -> crate::Result<usize>
    where
        Self: Sized,
        I: Iterator<Item = Self>,
    {
        Ok(Self::insert_rows(conn, rows.collect())?)
    }
}

#[cfg(feature = "r2d2")]
impl<R, C> BulkInsertRows<diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>>> for R
where
    R: BulkInsertRows<C>,
    C: diesel::r2d2::R2D2Connection + 'static,
{
    fn insert_rows(
        conn: &mut diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>>,
        rows: Vec<Self>,
    ) -> diesel::QueryResult<usize> {
        R::insert_rows(&mut **conn, rows)
    }

    fn insert_iter<I>(
        conn: &mut diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<C>>,
        rows: I,
    ) -> crate::Result<usize>
    where
        I: Iterator<Item = Self>,
    {
        R::insert_iter(&mut **conn, rows)
    }
}

/// The body of [`bulk_insert`](crate::bulk_insert), for a connection of `dialect` whose server takes packets of at
/// most `max_packet` bytes: every row in one streamed `COPY` where the dialect has no bind limit,
/// else multi-row `INSERT`s of as many rows as the limits allow. Runs in the caller's
/// transaction.
pub(crate) fn insert_in_chunks<C, R>(
    conn: &mut C,
    dialect: crate::Dialect,
    max_packet: Option<usize>,
    rows: impl Iterator<Item = R>,
) -> Result<usize>
where
    R: BulkRow + BulkInsertRows<C>,
{
    // Without a bind limit the backend takes every row in one COPY, streamed as they come.
    if dialect.bulk_binds().is_none() {
        return R::insert_iter(conn, rows);
    }
    let limits = ChunkLimits {
        rows: rows_per_chunk(dialect, R::COLUMNS),
        bytes: max_packet.map_or(usize::MAX, crate::backend::statement_budget),
    };
    let sized = limits.bytes != usize::MAX;
    let mut inserted = 0;
    let mut chunk: Vec<R> = Vec::with_capacity(limits.rows.min(4096));
    let mut chunk_bytes = 0;
    for row in rows {
        // Sizes matter only under a packet limit (MySQL); elsewhere they are not computed.
        let bytes = if sized {
            row.encoded_len() + R::COLUMNS * PER_VALUE_OVERHEAD
        } else {
            0
        };
        if bytes > limits.bytes {
            return Err(Error::RowTooLarge {
                bytes,
                limit: limits.bytes,
            });
        }
        if chunk.len() == limits.rows || chunk_bytes + bytes > limits.bytes {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(limits.rows.min(4096)));
            inserted += R::insert_rows(conn, full)?;
            chunk_bytes = 0;
        }
        chunk_bytes += bytes;
        chunk.push(row);
    }
    if !chunk.is_empty() {
        inserted += R::insert_rows(conn, chunk)?;
    }
    Ok(inserted)
}

/// How large one multi-row `INSERT` may be.
struct ChunkLimits {
    rows: usize,
    bytes: usize,
}

/// Rows of `columns` values in one full multi-row `INSERT` on `dialect` (see
/// [`chunk_rows`](crate::bulk::chunk_rows)); `usize::MAX` where one `COPY` takes every row.
pub(crate) const fn rows_per_chunk(dialect: crate::Dialect, columns: usize) -> usize {
    match dialect.bulk_binds() {
        Some(binds) if columns > binds => 1,
        Some(binds) if columns > 0 => binds / columns,
        Some(binds) => binds,
        None => usize::MAX,
    }
}
