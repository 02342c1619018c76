use batchframework_diesel::bulk_insertable;
use diesel::prelude::*;

diesel::table! {
    cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
}

#[bulk_insertable]
#[derive(Queryable, Selectable)]
#[diesel(table_name = cards)]
struct DealtCard {
    id: i64,
    player_id: i64,
    cardid: i32,
}

fn main() {}
