//! `#[batch_tracked]`: gives a Diesel model the `batchoperation_id` tracking field and the impls
//! that let the library tag rows on bulk insert and select them back by operation.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    parse_quote, Attribute, Fields, GenericArgument, Ident, ItemStruct, Path, PathArguments, Type,
};

const HELP: &str = "help: the correct format looks like `#[batch_tracked]` above \
                    `#[derive(...)]` and `#[diesel(table_name = players)]`";
const FIELD: &str = "batchoperation_id";

/// Entry point: parse, expand, and turn any error into a `compile_error!` at its span.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(first) = args.into_iter().next() {
        return syn::Error::new(
            first.span(),
            format!("#[batch_tracked] takes no arguments\n{HELP}"),
        )
        .into_compile_error();
    }
    let item = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(item)) => item,
        Ok(syn::Item::Enum(item)) => {
            return not_a_struct("batch_tracked", item.enum_token.span);
        }
        Ok(syn::Item::Union(item)) => return not_a_struct("batch_tracked", item.union_token.span),
        Ok(other) => return not_a_struct("batch_tracked", other.span()),
        Err(error) => return error.into_compile_error(),
    };
    expand_struct(item).unwrap_or_else(syn::Error::into_compile_error)
}

/// Entry point of `#[bulk_insertable]`: only the bulk-insert part, for untracked rows.
pub(crate) fn expand_bulk_insertable(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(first) = args.into_iter().next() {
        return syn::Error::new(first.span(), "#[bulk_insertable] takes no arguments")
            .into_compile_error();
    }
    let mut item = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(item)) => item,
        Ok(other) => return not_a_struct("bulk_insertable", other.span()),
        Err(error) => return error.into_compile_error(),
    };
    let result = (|| {
        let table = table_name(&item.attrs)?.ok_or_else(|| {
            syn::Error::new(
                item.ident.span(),
                "#[bulk_insertable] needs the model's table: add `#[diesel(table_name = ...)]`",
            )
        })?;
        if !derived_traits(&item.attrs)?
            .iter()
            .any(|d| d == "Insertable")
        {
            return Err(syn::Error::new(
                item.ident.span(),
                "#[bulk_insertable] goes on a struct that derives `Insertable`",
            ));
        }
        require_null_for_none(&mut item.attrs, "#[bulk_insertable]")?;
        let bulk = bulk_impls(&item, &table)?;
        Ok(quote! {
            #item
            const _: () = { #bulk };
        })
    })();
    result.unwrap_or_else(syn::Error::into_compile_error)
}

fn not_a_struct(attribute: &str, span: Span) -> TokenStream {
    syn::Error::new(
        span,
        format!("#[{attribute}] can only be used on a struct with named fields (a Diesel model)"),
    )
    .into_compile_error()
}

fn expand_struct(mut item: ItemStruct) -> syn::Result<TokenStream> {
    let table = table_name(&item.attrs)?.ok_or_else(|| {
        syn::Error::new(
            item.ident.span(),
            format!("#[batch_tracked] needs the model's table: add `#[diesel(table_name = ...)]`\n{HELP}"),
        )
    })?;
    let derives = derived_traits(&item.attrs)?;
    let insertable = derives.iter().any(|d| d == "Insertable");

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
            fields.named.push(parse_quote! {
                /// The batch operation that created this row, if any (added by `#[batch_tracked]`).
                #vis #name: ::core::option::Option<i64>
            });
            Some(name)
        }
    };
    if insertable {
        require_null_for_none(&mut item.attrs, "#[batch_tracked]")?;
    }

    let name = &item.ident;
    let (impl_generics, type_generics, where_clause) = item.generics.split_for_impl();
    // Spanned at the table path, so a table without the column is reported there.
    let column = quote_spanned!(table.span()=> #table::batchoperation_id);
    let bulk = if insertable {
        bulk_impls(&item, &table)?
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

/// The per-backend bulk-insert impls: binary COPY on PostgreSQL, multi-row INSERT elsewhere.
/// Each is emitted only when `batchframework_diesel` has that backend's feature.
fn bulk_impls(item: &ItemStruct, table: &Path) -> syn::Result<TokenStream> {
    let name = &item.ident;
    let (impl_generics, type_generics, where_clause) = item.generics.split_for_impl();
    let mut fields = Vec::new();
    if let Fields::Named(named) = &item.fields {
        for field in &named.named {
            match field_option(field)? {
                Some(FieldOption::SkipInsertion) => {}
                Some(FieldOption::Embed(span)) => {
                    return Err(syn::Error::new(
                        span,
                        "bulk insert does not support `#[diesel(embed)]`; flatten the fields",
                    ))
                }
                None => fields.push(field),
            }
        }
    }
    // `(&&Len(..)).encoded_len()` picks the exact length for types the library knows and a
    // size-based estimate for any other field type (autoref specialisation).
    let sizes = fields.iter().map(|f| {
        let ident = &f.ident;
        quote_spanned!(f.ty.span()=> (&&::batchframework_diesel::__private::Len(&self.#ident)).encoded_len())
    });
    let columns = fields.len();
    let chunked = |backend: &str, connection: TokenStream| {
        let macro_name = Ident::new(&format!("__batchframework_if_{backend}"), Span::call_site());
        quote! {
            ::batchframework_diesel::#macro_name! {
                impl #impl_generics ::batchframework_diesel::__private::BulkInsertRows<#connection>
                    for #name #type_generics #where_clause
                {
                    fn insert_rows(
                        conn: &mut #connection,
                        rows: ::std::vec::Vec<Self>,
                    ) -> ::batchframework_diesel::diesel::QueryResult<usize> {
                        use ::batchframework_diesel::diesel::RunQueryDsl;
                        ::batchframework_diesel::diesel::insert_into(#table::table)
                            .values(rows)
                            .execute(conn)
                    }
                }
            }
        }
    };
    let sqlite = chunked(
        "sqlite",
        quote!(::batchframework_diesel::diesel::SqliteConnection),
    );
    let mysql = chunked(
        "mysql",
        quote!(::batchframework_diesel::diesel::MysqlConnection),
    );
    Ok(quote! {
        impl #impl_generics ::batchframework_diesel::__private::BulkRow
            for #name #type_generics #where_clause
        {
            const COLUMNS: usize = #columns;

            #[allow(clippy::needless_borrow)] // `&&` selects the exact or estimated length
            fn encoded_len(&self) -> usize {
                #[allow(unused_imports)]
                use ::batchframework_diesel::__private::{FallbackLen as _, KnownLen as _};
                0 #( + #sizes )*
            }
        }

        ::batchframework_diesel::__batchframework_if_postgres! {
            impl #impl_generics ::batchframework_diesel::__private::BulkInsertRows<::batchframework_diesel::diesel::PgConnection>
                for #name #type_generics #where_clause
            {
                fn insert_rows(
                    conn: &mut ::batchframework_diesel::diesel::PgConnection,
                    rows: ::std::vec::Vec<Self>,
                ) -> ::batchframework_diesel::diesel::QueryResult<usize> {
                    use ::batchframework_diesel::diesel::prelude::ExecuteCopyFromDsl;
                    ::batchframework_diesel::diesel::copy_from(#table::table)
                        .from_insertable(rows)
                        .execute(conn)
                }
            }
        }
        #sqlite
        #mysql
    })
}

/// A field's Diesel option that changes what is inserted.
enum FieldOption {
    SkipInsertion,
    Embed(Span),
}

/// Reads a field's `#[diesel(...)]` options that matter to bulk insert, refusing a field-level
/// `treat_none_as_default_value = true` (it would write `DEFAULT`, which `COPY` cannot).
fn field_option(field: &syn::Field) -> syn::Result<Option<FieldOption>> {
    let mut found = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|option| {
            if option.path.is_ident("skip_insertion") {
                found = Some(FieldOption::SkipInsertion);
            } else if option.path.is_ident("embed") {
                found = Some(FieldOption::Embed(option.path.span()));
            } else if option.path.is_ident("treat_none_as_default_value") {
                let value = option.value()?.parse::<syn::LitBool>()?;
                if value.value {
                    return Err(syn::Error::new(
                        value.span(),
                        "bulk insert binds NULL for `None` (COPY has no DEFAULT): remove \
                         `treat_none_as_default_value = true` from this field",
                    ));
                }
            } else {
                skip_option_value(&option)?;
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// The column a field is stored in: `#[diesel(column_name = ...)]`, or the field's own name.
fn stored_column(field: &syn::Field) -> syn::Result<Option<String>> {
    let mut column = field.ident.as_ref().map(|i| i.to_string());
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|option| {
            if option.path.is_ident("column_name") {
                column = Some(option.value()?.parse::<Ident>()?.to_string());
            } else {
                skip_option_value(&option)?;
            }
            Ok(())
        })?;
    }
    Ok(column)
}

/// The path in `#[diesel(table_name = ...)]`, if any.
fn table_name(attrs: &[Attribute]) -> syn::Result<Option<Path>> {
    let mut table = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|option| {
            if option.path.is_ident("table_name") {
                table = Some(option.value()?.parse::<Path>()?);
            } else {
                skip_option_value(&option)?;
            }
            Ok(())
        })?;
    }
    Ok(table)
}

/// Skips the tokens of a `#[diesel(...)]` option this macro does not read.
pub(crate) fn skip_option_value(option: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    let input = option.input;
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// The last path segment of every derived trait (`Insertable`, `Queryable`, ...).
fn derived_traits(attrs: &[Attribute]) -> syn::Result<Vec<String>> {
    let mut derives = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        attr.parse_nested_meta(|derive| {
            if let Some(last) = derive.path.segments.last() {
                derives.push(last.ident.to_string());
            }
            Ok(())
        })?;
    }
    Ok(derives)
}

/// Bulk inserts bind a NULL for `None` instead of writing `DEFAULT`: PostgreSQL's `COPY` has no
/// `DEFAULT`, and SQLite can only batch rows without it. Adds the Diesel option unless present;
/// refuses an explicit `true`.
fn require_null_for_none(attrs: &mut Vec<Attribute>, macro_name: &str) -> syn::Result<()> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        let mut explicit = None;
        attr.parse_nested_meta(|option| {
            if option.path.is_ident("treat_none_as_default_value") {
                explicit = Some(option.value()?.parse::<syn::LitBool>()?);
            } else {
                skip_option_value(&option)?;
            }
            Ok(())
        })?;
        match explicit {
            Some(value) if value.value => {
                return Err(syn::Error::new(
                    value.span(),
                    format!(
                        "{macro_name} bulk inserts need `treat_none_as_default_value = false` \
                         (COPY has no DEFAULT); remove this option and it is set for you"
                    ),
                ))
            }
            Some(_) => return Ok(()),
            None => {}
        }
    }
    attrs.push(parse_quote!(#[diesel(treat_none_as_default_value = false)]));
    Ok(())
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

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn adds_the_field_and_null_for_none_to_an_insertable() {
        let out = expand_str(
            quote!(),
            quote! {
                #[derive(Insertable)]
                #[diesel(table_name = crate::schema::players)]
                struct NewPlayer { name: String }
            },
        );
        assert!(
            out.contains("batchoperation_id : :: core :: option :: Option < i64 >"),
            "{out}"
        );
        assert!(
            out.contains("# [diesel (treat_none_as_default_value = false)]"),
            "{out}"
        );
        assert!(
            out.contains("copy_from (crate :: schema :: players :: table)"),
            "{out}"
        );
        assert!(out.contains("const COLUMNS : usize = 2usize"), "{out}");
        assert!(
            out.contains(
                "crate :: schema :: players :: batchoperation_id . eq (operation . id ())"
            ),
            "{out}"
        );
    }

    #[test]
    fn keeps_an_existing_field_and_adds_no_bulk_impls_to_a_queryable() {
        let out = expand_str(
            quote!(),
            quote! {
                #[derive(Queryable, Selectable)]
                #[diesel(table_name = players, check_for_backend(diesel::pg::Pg))]
                pub struct Player { pub id: i64, pub batchoperation_id: Option<i64> }
            },
        );
        assert_eq!(
            out.matches("batchoperation_id : Option < i64 >").count(),
            1,
            "{out}"
        );
        assert!(!out.contains("BulkInsertRows"), "{out}");
        assert!(!out.contains("treat_none_as_default_value"), "{out}");
        assert!(out.contains("fn in_batch"), "{out}");
    }

    #[test]
    fn a_renamed_tracking_field_and_lifetimes_are_supported() {
        let out = expand_str(
            quote!(),
            quote! {
                #[derive(Insertable)]
                #[diesel(table_name = players)]
                struct NewPlayer<'a> {
                    name: &'a str,
                    #[diesel(column_name = batchoperation_id)]
                    operation: Option<i64>,
                }
            },
        );
        assert!(
            !out.contains("batchoperation_id : :: core"),
            "no second field: {out}"
        );
        assert!(out.contains("self . operation = id"), "{out}");
        assert!(out.contains("BulkRow for NewPlayer < 'a >"), "{out}");
    }

    #[test]
    fn misuse_is_a_compile_error() {
        for (args, item, message) in [
            (
                quote!(),
                quote! { struct P { id: i64 } },
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
                quote! { #[diesel(table_name = p)] struct P { batchoperation_id: i64 } },
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
}
