use batchframework_diesel::batch_tracked;

#[batch_tracked]
#[diesel(table_name = players)]
struct Player {
    id: i64,
    batchoperation_id: i32,
}

fn main() {}
