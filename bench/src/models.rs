//! The benchmark's tables and row types: those of `examples/game_cards`, plus plain Diesel rows
//! for the variants that do not use this library.

use diesel::prelude::*;

#[path = "../../examples/game_cards/models.rs"]
mod game_cards;

pub(crate) use game_cards::{cards, games, players, NewCard, NewPlayer, Player};

/// (a)'s and (b)'s player rows: plain Diesel.
#[derive(Insertable)]
#[diesel(table_name = players)]
pub(crate) struct PlainPlayer {
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

/// The card dealt to player number `i` (deterministic, so every variant inserts the same rows).
pub(crate) fn card_for(i: usize) -> i32 {
    (i % 52) as i32 + 1
}
