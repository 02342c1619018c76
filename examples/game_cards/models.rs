//! The Game/Player/Card tables and models. `#[batch_tracked]` gives the player structs their
//! `batchoperation_id`; `#[bulk_insertable]` lets cards be bulk inserted untracked.

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

diesel::joinable!(players -> games (game_id));
diesel::joinable!(cards -> players (player_id));
diesel::allow_tables_to_appear_in_same_query!(games, players, cards);

#[derive(Insertable)]
#[diesel(table_name = games)]
pub(crate) struct NewGame<'a> {
    pub(crate) name: &'a str,
}

/// A player to create; the bulk insert tags it with the operation.
#[batch_tracked]
#[derive(Insertable)]
#[diesel(table_name = players)]
pub(crate) struct NewPlayer {
    pub(crate) game_id: i64,
    pub(crate) name: String,
}

/// A created player, as selected back by operation.
#[batch_tracked]
#[derive(Queryable, Selectable)]
#[diesel(table_name = players)]
pub(crate) struct Player {
    pub(crate) id: i64,
}

/// A card dealt to a player: a child row, inserted untracked.
#[bulk_insertable]
#[derive(Insertable)]
#[diesel(table_name = cards)]
pub(crate) struct NewCard {
    pub(crate) player_id: i64,
    pub(crate) cardid: i32,
}
