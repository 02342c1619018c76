use batchframework_diesel::batch_tracked;

#[batch_tracked]
#[diesel(table_name = players)]
enum Player {
    Human,
    Robot,
}

fn main() {}
