use batchframework_diesel::batch_tracked;

#[batch_tracked(copy = true)]
#[diesel(table_name = players)]
struct Player {
    id: i64,
}

fn main() {}
