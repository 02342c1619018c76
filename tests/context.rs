//! Context objects: derived from Diesel models with integer, text and UUID keys, and queried by.

use batchframework_diesel::{BatchOperation, ContextObject, OperationFilter};
use batchframework_tests::{backend_tests, migrated, TestBackend};

#[derive(ContextObject)]
#[diesel(table_name = crate::context::games)]
struct Game {
    id: i32,
}

#[derive(ContextObject)]
#[diesel(primary_key(slug))]
struct BlogPost {
    slug: String,
}

#[derive(ContextObject)]
#[context_object(type_key = "accounts")]
struct Account {
    id: uuid::Uuid,
}

diesel::table! {
    games (id) { id -> Integer, }
}

#[test]
fn derived_type_keys_and_ids() {
    let game = Game { id: 7 };
    assert_eq!(game.context_object_type(), "games");
    assert_eq!(game.context_object_id().as_str(), "7");
    let post = BlogPost {
        slug: "hello-world".into(),
    };
    assert_eq!(post.context_object_type(), "blog_posts");
    assert_eq!(post.context_object_id().as_str(), "hello-world");
    let id = uuid::Uuid::new_v4();
    let account = Account { id };
    assert_eq!(account.context_object_type(), "accounts");
    assert_eq!(
        account.context_object_id().as_str(),
        id.hyphenated().to_string()
    );
}

fn operations_are_found_by_derived_context_objects<B: TestBackend>() {
    let (_db, mut conn) = migrated::<B>();
    let game = Game { id: 7 };
    let other_game = Game { id: 8 };
    let post = BlogPost { slug: "7".into() };
    let account = Account {
        id: uuid::Uuid::new_v4(),
    };
    let mut ids = Vec::new();
    for context in [&game as &dyn ContextObject, &other_game, &post, &account] {
        let op = BatchOperation::create_asynchronous("job")
            .context_object(&context)
            .insert(&mut conn)
            .unwrap();
        ids.push(op.id());
    }
    let found = |context: &dyn ContextObject, conn: &mut B::Connection| -> Vec<i64> {
        OperationFilter::new()
            .context_object(&context)
            .load(conn)
            .unwrap()
            .iter()
            .map(BatchOperation::id)
            .collect()
    };
    assert_eq!(found(&game, &mut conn), [ids[0]]);
    // Same id text, other type key: another object.
    assert_eq!(found(&post, &mut conn), [ids[2]]);
    assert_eq!(found(&account, &mut conn), [ids[3]]);
}

backend_tests!(operations_are_found_by_derived_context_objects);
