use batchframework_diesel::ContextObject;

#[derive(ContextObject)]
#[diesel(table_name = games)]
struct Game {
    name: String,
}

fn main() {}
