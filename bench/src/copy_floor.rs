//! (e) The strict floor on PostgreSQL: the players and cards the pattern inserts, with ids the
//! bench chooses (1..=N on the fresh tables), each table as one binary `COPY` written by hand
//! over the already open connection, with no library in between: what the 5-query pattern
//! would cost if it knew its ids in advance and had nothing to tag, check or track.
//!
//! The rows are encoded into a 64 KiB buffer flushed to the connection, as the library's `COPY`
//! does; the buffer is all the memory it holds.

use std::io::Write;

use diesel::pg::CopyFormat;
use diesel::prelude::*;

use crate::models::{card_for, cards, players};
use crate::AnyError;

/// Bytes buffered before they are handed to libpq.
const FLUSH_AT: usize = 64 * 1024;

/// The binary format's signature, flags and header extension length.
const HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The two binary `COPY`s, on the connections that have them.
pub(crate) trait StrictFloor {
    /// Players 1..=n of `game`, tagged with operation `operation`, named as the pattern names
    /// them.
    fn copy_players_with_ids(
        &mut self,
        game: i64,
        operation: i64,
        n: usize,
    ) -> Result<(), AnyError>;
    /// Card i (1..=n) for player i, dealt as the pattern deals it.
    fn copy_cards_with_ids(&mut self, n: usize) -> Result<(), AnyError>;
}

impl StrictFloor for diesel::PgConnection {
    fn copy_players_with_ids(
        &mut self,
        game: i64,
        operation: i64,
        n: usize,
    ) -> Result<(), AnyError> {
        let copied = diesel::copy_from(players::table)
            .from_raw_data(
                (
                    players::id,
                    players::game_id,
                    players::name,
                    players::batchoperation_id,
                ),
                |sink: &mut dyn Write| {
                    copy(sink, n, |i, out| {
                        let name = format!("player{i}");
                        out.extend_from_slice(&4_i16.to_be_bytes());
                        field(out, &(i as i64 + 1).to_be_bytes());
                        field(out, &game.to_be_bytes());
                        field(out, name.as_bytes());
                        field(out, &operation.to_be_bytes());
                    })
                },
            )
            .with_format(CopyFormat::Binary)
            .execute(self)?;
        check(copied, n)
    }

    fn copy_cards_with_ids(&mut self, n: usize) -> Result<(), AnyError> {
        let copied = diesel::copy_from(cards::table)
            .from_raw_data(
                (cards::id, cards::player_id, cards::cardid),
                |sink: &mut dyn Write| {
                    copy(sink, n, |i, out| {
                        let id = i as i64 + 1;
                        out.extend_from_slice(&3_i16.to_be_bytes());
                        field(out, &id.to_be_bytes());
                        field(out, &id.to_be_bytes());
                        field(out, &card_for(i).to_be_bytes());
                    })
                },
            )
            .with_format(CopyFormat::Binary)
            .execute(self)?;
        check(copied, n)
    }
}

/// Not on SQLite or MySQL/MariaDB: (e) runs on PostgreSQL only.
macro_rules! no_strict_floor {
    ($($conn:ty),*) => {$(
        impl StrictFloor for $conn {
            fn copy_players_with_ids(&mut self, _: i64, _: i64, _: usize) -> Result<(), AnyError> {
                Err("the strict floor is a PostgreSQL COPY".into())
            }
            fn copy_cards_with_ids(&mut self, _: usize) -> Result<(), AnyError> {
                Err("the strict floor is a PostgreSQL COPY".into())
            }
        }
    )*};
}
no_strict_floor!(diesel::SqliteConnection, diesel::MysqlConnection);

/// The header, rows 0..n as `row` encodes them, the trailer.
fn copy(sink: &mut dyn Write, n: usize, row: impl Fn(usize, &mut Vec<u8>)) -> QueryResult<()> {
    let io = |e: std::io::Error| diesel::result::Error::SerializationError(Box::new(e));
    let mut buffer = Vec::with_capacity(FLUSH_AT + 1024);
    buffer.extend_from_slice(&HEADER);
    for i in 0..n {
        row(i, &mut buffer);
        if buffer.len() >= FLUSH_AT {
            sink.write_all(&buffer).map_err(io)?;
            buffer.clear();
        }
    }
    buffer.extend_from_slice(&(-1_i16).to_be_bytes());
    sink.write_all(&buffer).map_err(io)
}

/// One non-NULL field: its length, then its bytes.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn check(copied: usize, n: usize) -> Result<(), AnyError> {
    if copied == n {
        Ok(())
    } else {
        Err(format!("COPY took {copied} rows, not {n}").into())
    }
}
