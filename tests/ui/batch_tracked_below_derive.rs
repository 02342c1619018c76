use batchframework_diesel::batch_tracked;
use diesel::prelude::*;

diesel::table! {
    players (id) { id -> BigInt, name -> Text, batchoperation_id -> Nullable<BigInt>, }
}

// The derive has already run, without the `batchoperation_id` field, when `#[batch_tracked]` is
// expanded below it.
#[derive(Insertable)]
#[batch_tracked]
#[diesel(table_name = players)]
struct NewPlayer {
    name: String,
}

fn main() {
    let _ = NewPlayer {
        name: String::from("ann"),
    };
}
