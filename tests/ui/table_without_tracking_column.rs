use batchframework_diesel::batch_tracked;
use diesel::prelude::*;

diesel::table! {
    players (id) { id -> BigInt, name -> Text, }
}

#[batch_tracked]
#[derive(Queryable, Selectable)]
#[diesel(table_name = players)]
struct Player {
    id: i64,
    name: String,
}

fn main() {}
