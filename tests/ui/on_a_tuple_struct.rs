use batchframework_diesel::batch_tracked;

#[batch_tracked]
#[diesel(table_name = players)]
struct Player(i64, String);

fn main() {}
