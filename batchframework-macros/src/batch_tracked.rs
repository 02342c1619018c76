//! `#[batch_tracked]`: gives a Diesel model the `batchoperation_id` tracking field and the impls
//! that let the library tag rows on bulk insert and select them back by operation.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Fields, GenericArgument, Ident, ItemStruct, PathArguments, Type};

use crate::bulk_insertable::{bulk_impls, require_null_for_none, stored_column};
use crate::model::{ModelAttributes, Placement, DIESEL_MODEL_DERIVES};

const HELP: &str = "help: the correct format looks like `#[batch_tracked]` above \
                    `#[derive(...)]` and `#[diesel(table_name = players)]`";
const FIELD: &str = "batchoperation_id";

/// Where `#[batch_tracked]` must be written.
const PLACEMENT: Placement = Placement {
    attribute: "batch_tracked",
    derive: "...",
    adds: "the `batchoperation_id` field",
    derives: DIESEL_MODEL_DERIVES,
    example: "`#[derive(Insertable)]` or `#[derive(Queryable, Selectable)]`",
};

/// Expands `#[batch_tracked]` on the parsed item. A struct written without a Diesel derive below
/// the attribute is kept, next to the placement error, so that the error is the only one.
pub(crate) fn expand(args: TokenStream, item: syn::Item) -> syn::Result<TokenStream> {
    if let Some(first) = args.into_iter().next() {
        return Err(syn::Error::new(
            first.span(),
            format!("#[batch_tracked] takes no arguments\n{HELP}"),
        ));
    }
    let item = match item {
        syn::Item::Struct(item) => item,
        syn::Item::Enum(item) => return Err(not_a_struct("batch_tracked", item.enum_token.span)),
        syn::Item::Union(item) => return Err(not_a_struct("batch_tracked", item.union_token.span)),
        other => return Err(not_a_struct("batch_tracked", other.span())),
    };
    let model = ModelAttributes::parse(&item.attrs)?;
    if !matches!(item.fields, Fields::Named(_)) {
        return Err(not_a_struct("batch_tracked", item.fields.span()));
    }
    if let Err(error) = model.require_derive(&item, &PLACEMENT) {
        let item = model.kept_item(&item);
        let error = error.into_compile_error();
        return Ok(quote!(#item #error));
    }
    expand_struct(item, &model)
}

/// The error for an item that is not a struct.
pub(crate) fn not_a_struct(attribute: &str, span: Span) -> syn::Error {
    syn::Error::new(
        span,
        format!("#[{attribute}] can only be used on a struct with named fields (a Diesel model)"),
    )
}

fn expand_struct(mut item: ItemStruct, model: &ModelAttributes) -> syn::Result<TokenStream> {
    let table = model.table_name.as_ref().ok_or_else(|| {
        syn::Error::new(
            item.ident.span(),
            format!("#[batch_tracked] needs the model's table: add `#[diesel(table_name = ...)]`\n{HELP}"),
        )
    })?;
    let insertable = model.derives("Insertable");

    let Fields::Named(fields) = &mut item.fields else {
        return Err(syn::Error::new(
            item.fields.span(),
            "#[batch_tracked] can only be used on a struct with named fields (a Diesel model)",
        ));
    };
    // The tracking field is the one stored in the `batchoperation_id` column: by its name, or
    // renamed with `#[diesel(column_name = batchoperation_id)]`.
    let mut tracking_field = None;
    for field in &fields.named {
        if stored_column(field)?.is_some_and(|column| column == FIELD) {
            tracking_field = Some(field);
        }
    }
    let tracking_field = match tracking_field {
        Some(field) if !is_option_i64(&field.ty) => {
            return Err(syn::Error::new(
                field.ty.span(),
                "`batchoperation_id` must be `Option<i64>` (the column is a nullable BIGINT)",
            ))
        }
        Some(field) => field.ident.clone(),
        // Named with the table path's span, so Diesel's derives report a table without the
        // column at `table_name = ...`. As visible as the struct, so its users can set it in
        // struct literals.
        None => {
            let vis = &item.vis;
            let name = Ident::new(FIELD, table.span());
            fields.named.push(syn::Field::parse_named.parse2(quote! {
                /// The batch operation that created this row, if any (added by `#[batch_tracked]`).
                #vis #name: ::core::option::Option<i64>
            })?);
            Some(name)
        }
    };
    if insertable {
        require_null_for_none(&mut item.attrs, model, "#[batch_tracked]")?;
    }

    let name = &item.ident;
    let (impl_generics, type_generics, where_clause) = item.generics.split_for_impl();
    // Spanned at the table path, so a table without the column is reported there.
    let column = quote_spanned!(table.span()=> #table::batchoperation_id);
    let bulk = if insertable {
        bulk_impls(&item, table)?
    } else {
        TokenStream::new()
    };
    Ok(quote! {
        #item

        const _: () = {
            impl #impl_generics ::batchframework_diesel::BatchTracked for #name #type_generics
            #where_clause
            {
                fn batch_operation_id(&self) -> ::core::option::Option<i64> {
                    self.#tracking_field
                }

                fn set_batch_operation_id(&mut self, id: ::core::option::Option<i64>) {
                    self.#tracking_field = id;
                }
            }

            impl #impl_generics #name #type_generics #where_clause {
                /// The rows of this table created by `operation`: an ordinary Diesel query
                /// (`... WHERE batchoperation_id = <operation id>`) to filter, order, select,
                /// load or stream further.
                #[allow(dead_code)]
                pub fn in_batch(
                    operation: &::batchframework_diesel::BatchOperation,
                ) -> ::batchframework_diesel::diesel::dsl::Filter<
                    #table::table,
                    ::batchframework_diesel::diesel::dsl::Eq<#column, i64>,
                > {
                    use ::batchframework_diesel::diesel::{ExpressionMethods, QueryDsl};
                    #table::table.filter(#column.eq(operation.id()))
                }
            }

            #bulk
        };
    })
}

/// `Option<i64>`, spelled `Option`, `std::option::Option` or `core::option::Option`.
fn is_option_i64(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Option" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(
        args.args.first(),
        Some(GenericArgument::Type(Type::Path(inner))) if args.args.len() == 1
            && inner.path.to_token_stream().to_string() == "i64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pretty;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        crate::batch_tracked_inner(args, item).to_string()
    }

    fn snapshot(item: TokenStream) -> syn::Result<String> {
        pretty(crate::batch_tracked_inner(quote!(), item))
    }

    /// The field and the option are added, `BatchTracked`, `in_batch` and the bulk impls
    /// implemented.
    #[test]
    fn insertable() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[derive(Insertable)]
            #[diesel(table_name = crate::schema::players)]
            pub struct NewPlayer {
                pub name: String,
            }
        })?);
        Ok(())
    }

    /// The field is added; no option and no bulk impls, as the struct is not `Insertable`.
    #[test]
    fn queryable_selectable() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[derive(Queryable, Selectable)]
            #[diesel(table_name = players, check_for_backend(diesel::pg::Pg))]
            pub struct Player {
                pub id: i64,
                pub name: String,
            }
        })?);
        Ok(())
    }

    /// A `batchoperation_id` field is the tracking field: no second one.
    #[test]
    fn existing_tracking_field() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[derive(Queryable, Selectable)]
            #[diesel(table_name = players)]
            pub struct Player {
                pub id: i64,
                pub batchoperation_id: Option<i64>,
            }
        })?);
        Ok(())
    }

    /// A field stored in the `batchoperation_id` column under another name is the tracking
    /// field.
    #[test]
    fn renamed_tracking_field() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[derive(Insertable)]
            #[diesel(table_name = players)]
            struct NewPlayer {
                name: String,
                #[diesel(column_name = batchoperation_id)]
                operation: ::std::option::Option<i64>,
            }
        })?);
        Ok(())
    }

    /// The struct's generics go on every impl.
    #[test]
    fn lifetimes() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[derive(Insertable)]
            #[diesel(table_name = players)]
            struct NewPlayer<'a> {
                name: &'a str,
                nickname: Option<&'a str>,
            }
        })?);
        Ok(())
    }

    #[test]
    fn misuse_is_a_compile_error() {
        for (args, item, message) in [
            (
                quote!(),
                quote! { #[derive(Queryable)] struct P { id: i64 } },
                "needs the model's table",
            ),
            (
                quote!(bogus),
                quote! { #[diesel(table_name = p)] struct P { id: i64 } },
                "takes no arguments",
            ),
            (
                quote!(),
                quote! { #[diesel(table_name = p)] enum P { A } },
                "named fields",
            ),
            (
                quote!(),
                quote! { #[diesel(table_name = p)] struct P(i64); },
                "named fields",
            ),
            (
                quote!(),
                quote! {
                    #[derive(Queryable)]
                    #[diesel(table_name = p)]
                    struct P { batchoperation_id: i64 }
                },
                "must be `Option<i64>`",
            ),
            (
                quote!(),
                quote! {
                    #[derive(Insertable)]
                    #[diesel(table_name = p, treat_none_as_default_value = true)]
                    struct P { id: i64 }
                },
                "need `treat_none_as_default_value = false`",
            ),
            (
                quote!(),
                quote! {
                    #[derive(Insertable)]
                    #[diesel(table_name = p)]
                    struct P { #[diesel(treat_none_as_default_value = true)] name: Option<String> }
                },
                "remove `treat_none_as_default_value = true` from this field",
            ),
        ] {
            let out = expand_str(args, item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "{message}: {out}");
        }
    }

    #[test]
    fn a_struct_without_a_diesel_derive_is_refused_and_kept() {
        for item in [
            // Written below the derive: the derive is gone from the input.
            quote! { #[diesel(table_name = p)] struct P { id: i64 } },
            quote! { struct P { id: i64 } },
            quote! { #[derive(Debug, Clone)] #[diesel(table_name = p)] struct P { id: i64 } },
        ] {
            let out = expand_str(quote!(), item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(
                out.contains("`#[batch_tracked]` must be written above `#[derive(...)]`"),
                "{out}"
            );
            assert!(out.contains("struct P { id : i64 }"), "kept: {out}");
            assert!(
                !out.contains("# [diesel"),
                "diesel attribute dropped: {out}"
            );
            assert!(
                !out.contains("batchoperation_id :"),
                "no field added: {out}"
            );
        }
        for derive in DIESEL_MODEL_DERIVES {
            let derive = Ident::new(derive, Span::call_site());
            let out = expand_str(
                quote!(),
                quote! { #[derive(diesel::#derive)] #[diesel(table_name = p)] struct P { id: i64 } },
            );
            assert!(!out.contains("compile_error"), "{derive}: {out}");
        }
    }
}
