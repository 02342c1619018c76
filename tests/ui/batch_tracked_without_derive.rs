use batchframework_diesel::batch_tracked;

#[batch_tracked]
#[derive(Debug, Clone)]
struct Player {
    id: i64,
    name: String,
}

fn main() {
    let _ = Player {
        id: 1,
        name: String::from("ann"),
    };
}
