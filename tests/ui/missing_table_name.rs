use batchframework_diesel::batch_tracked;
use diesel::prelude::*;

#[batch_tracked]
#[derive(Insertable)]
struct NewPlayer {
    name: String,
}

fn main() {}
