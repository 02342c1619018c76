use batchframework_diesel::batch_tracked;
use diesel::prelude::*;

diesel::table! {
    players (id) { id -> BigInt, name -> Nullable<Text>, batchoperation_id -> Nullable<BigInt>, }
}

#[batch_tracked]
#[derive(Insertable)]
#[diesel(table_name = players, treat_none_as_default_value = true)]
struct NewPlayer {
    name: Option<String>,
}

fn main() {}
