use batchframework_diesel::bulk_insertable;
use diesel::prelude::*;

diesel::table! {
    cards (id) { id -> BigInt, player_id -> BigInt, cardid -> Integer, }
}

#[derive(Insertable)]
#[diesel(table_name = cards)]
#[bulk_insertable]
struct NewCard {
    player_id: i64,
    cardid: i32,
}

fn main() {
    let _ = NewCard {
        player_id: 1,
        cardid: 7,
    };
}
