//! Procedural macros for `batchframework-diesel`; depend on that crate, which re-exports them.
//!
//! * `#[derive(ContextObject)]`: lets a Diesel model be the context object of batch operations,
//!   with its table name as type key and its primary key as id.
//! * `#[batch_tracked]`: gives a model the `batchoperation_id` tracking field, the
//!   `Model::in_batch(&operation)` select-back query and, on `Insertable` structs, bulk insert.
//! * `#[bulk_insertable]`: bulk insert for an `Insertable` struct that is not tracked.
//!
//! `#[batch_tracked]` and `#[bulk_insertable]` are written above `#[derive(...)]`: they change
//! the struct, and the derive must see the change. Written below it, or on a struct without the
//! derive they work with, they are a compile error that shows the correct order.
//!
//! The library's documentation of each macro has a complete, compiled example.
//!
//! Each macro is an entry point here and a module of the same name: `*_inner` takes and returns
//! `proc_macro2` tokens (so the tests can call it), parses, expands, and turns an error into a
//! `compile_error!` at its span. The tests snapshot the expansions under `src/snapshots/`.

mod batch_tracked;
mod bulk_insertable;
mod context_object;
mod model;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

/// `#[derive(ContextObject)]` implements `batchframework_diesel::ContextObject` for a Diesel
/// model.
///
/// The type key is the model's table: the last segment of `#[diesel(table_name = ...)]`, or,
/// without one, Diesel's own default (the struct name in snake case, plus `s`). The id is the
/// field named by `#[diesel(primary_key(...))]`, or `id`; it must convert into `ContextId`
/// (integers, `String`, `uuid::Uuid`).
///
/// `#[context_object(type_key = "...")]` sets another type key, e.g. to keep the key stable
/// across a table rename.
#[proc_macro_derive(ContextObject, attributes(context_object, diesel))]
pub fn derive_context_object(input: TokenStream) -> TokenStream {
    derive_context_object_inner(input.into()).into()
}

fn derive_context_object_inner(input: TokenStream2) -> TokenStream2 {
    syn::parse2(input)
        .and_then(|input| context_object::expand(&input))
        .unwrap_or_else(syn::Error::into_compile_error)
}

/// `#[batch_tracked]` makes a Diesel model *batch tracked*: its rows carry the id of the batch
/// operation that created them in a `batchoperation_id` column, so one operation's rows are
/// selected back with one query.
///
/// Write it above `#[derive(...)]`, which must derive a Diesel model trait (`Insertable`,
/// `Queryable`, `Selectable`, `QueryableByName`, `Identifiable`, `AsChangeset`, `Associations` or
/// `HasQuery`): a derive above it has already run on the struct without the field it adds, so it
/// refuses a struct on which it sees none. The struct needs `#[diesel(table_name = ...)]`, and the
/// table a `batchoperation_id -> Nullable<BigInt>` column (see
/// `batchframework_diesel::tracking_column_sql`).
///
/// * Adds `batchoperation_id: Option<i64>`, as visible as the struct, unless the struct has a
///   field for that column (by name or `#[diesel(column_name = batchoperation_id)]`); any type
///   but `Option<i64>` is an error.
/// * Implements `BatchTracked` (how the library tags a row) and an inherent
///   `Model::in_batch(&operation)`: `table.filter(batchoperation_id.eq(operation.id()))`.
/// * On an `Insertable` struct: sets `#[diesel(treat_none_as_default_value = false)]` and
///   implements the library's bulk insert for every backend it has enabled: binary `COPY` on
///   PostgreSQL, multi-row `INSERT` on SQLite and MySQL. Note that the option applies to every
///   insert of the struct, Diesel's own included: a `None` field is stored as NULL, not as the
///   column's `DEFAULT` (`COPY` has no `DEFAULT`). Leave columns that need their default out of
///   the struct.
#[proc_macro_attribute]
pub fn batch_tracked(args: TokenStream, item: TokenStream) -> TokenStream {
    batch_tracked_inner(args.into(), item.into()).into()
}

fn batch_tracked_inner(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    syn::parse2(item)
        .and_then(|item| batch_tracked::expand(args, item))
        .unwrap_or_else(syn::Error::into_compile_error)
}

/// `#[bulk_insertable]` makes an `Insertable` struct bulk insertable without tracking it: for
/// child rows such as the cards of the 5-query pattern, inserted with
/// `batchframework_diesel::bulk_insert`.
///
/// Write it above `#[derive(Insertable)]`, next to `#[diesel(table_name = ...)]`; on a struct
/// where it sees no `Insertable` derive (because it was written below it, or there is none) it is
/// a compile error. Like `#[batch_tracked]`, it sets `treat_none_as_default_value = false` (so
/// `None` is stored as NULL by every insert of the struct, not as the column's `DEFAULT`) and
/// implements binary `COPY` on PostgreSQL and chunked multi-row `INSERT` on SQLite and MySQL.
#[proc_macro_attribute]
pub fn bulk_insertable(args: TokenStream, item: TokenStream) -> TokenStream {
    bulk_insertable_inner(args.into(), item.into()).into()
}

fn bulk_insertable_inner(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    syn::parse2(item)
        .and_then(|item| bulk_insertable::expand(args, item))
        .unwrap_or_else(syn::Error::into_compile_error)
}

/// What the tests of every macro share.
#[cfg(test)]
mod test_support {
    use proc_macro2::TokenStream;

    /// An expansion as readable source, for a snapshot: it must parse as a file of items.
    pub(crate) fn pretty(tokens: TokenStream) -> syn::Result<String> {
        Ok(prettyplease::unparse(&syn::parse2::<syn::File>(tokens)?))
    }
}
