use batchframework_diesel::batch_tracked;
use diesel::prelude::*;

#[batch_tracked]
#[derive(Queryable)]
#[diesel(table_name = players)]
struct Player {
    id: i64,
    batchoperation_id: i32,
}

fn main() {}
