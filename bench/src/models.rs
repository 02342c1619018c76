//! The benchmark's tables (those of `examples/game_cards`) and row types.

use batchframework_diesel::{batch_tracked, bulk_insertable};
use diesel::prelude::*;

diesel::table! {
    games (id) { id -> BigInt, name -> Varchar, }
}
diesel::table! {
    players (id) {
        id -> BigInt,
        game_id -> BigInt,
        name -> Varchar,
        batchoperation_id -> Nullable<BigInt>,
    }
}
diesel::table! {
    cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
}

/// (c)'s player rows, tagged by the library.
#[batch_tracked]
#[derive(Insertable)]
#[diesel(table_name = players)]
pub(crate) struct NewPlayer {
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

/// (c)'s select-back.
#[batch_tracked]
#[derive(Queryable, Selectable)]
#[diesel(table_name = players)]
pub(crate) struct Player {
    pub(crate) id: i64,
}

/// (a)'s and (b)'s player rows: plain Diesel.
#[derive(Insertable)]
#[diesel(table_name = players)]
pub(crate) struct PlainPlayer {
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

/// Cards, for every variant.
#[bulk_insertable]
#[derive(Insertable)]
#[diesel(table_name = cards)]
pub(crate) struct NewCard {
    pub(crate) player_id: i64,
    pub(crate) cardid: i32,
}

/// The card dealt to player number `i` (deterministic, so every variant inserts the same rows).
pub(crate) fn card_for(i: usize) -> i32 {
    (i % 52) as i32 + 1
}
