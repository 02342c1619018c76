//! Procedural macros for `batchframework-diesel`; depend on that crate, which re-exports them.
//!
//! * `#[derive(ContextObject)]`: lets a Diesel model be the context object of batch operations,
//!   with its table name as type key and its primary key as id.

mod context_object;

use proc_macro::TokenStream;

/// Implements `batchframework_diesel::ContextObject` for a Diesel model.
///
/// The type key is the model's table: the last segment of `#[diesel(table_name = ...)]`, or,
/// without one, Diesel's own default (the struct name in snake case, plus `s`). The id is the
/// field named by `#[diesel(primary_key(...))]`, or `id`; it must convert into `ContextId`
/// (integers, `String`, `uuid::Uuid`).
///
/// `#[context_object(type_key = "...")]` sets another type key, e.g. to keep the key stable
/// across a table rename.
///
/// ```ignore
/// #[derive(Queryable, Identifiable, ContextObject)]
/// #[diesel(table_name = games)]
/// struct Game { id: i32, name: String }
/// // context_object_type() == "games", context_object_id() == game.id
/// ```
#[proc_macro_derive(ContextObject, attributes(context_object, diesel))]
pub fn derive_context_object(input: TokenStream) -> TokenStream {
    context_object::derive(input.into()).into()
}
