//! `#[bulk_insertable]`: bulk insert for an `Insertable` struct, and the bulk-insert impls that
//! `#[batch_tracked]` also generates on `Insertable` models.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Ident, ItemStruct, Path};

use crate::batch_tracked::not_a_struct;
use crate::model::{skip_option_value, ModelAttributes, Placement};

/// Where `#[bulk_insertable]` must be written.
const PLACEMENT: Placement = Placement {
    attribute: "bulk_insertable",
    derive: "Insertable",
    adds: "`#[diesel(treat_none_as_default_value = false)]`",
    derives: &["Insertable"],
    example: "`#[derive(Insertable)]`",
};

/// Entry point: parse, expand, and turn any error into a `compile_error!` at its span.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(first) = args.into_iter().next() {
        return syn::Error::new(first.span(), "#[bulk_insertable] takes no arguments")
            .into_compile_error();
    }
    let item = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(item)) => item,
        Ok(other) => return not_a_struct("bulk_insertable", other.span()),
        Err(error) => return error.into_compile_error(),
    };
    let model = match ModelAttributes::parse(&item.attrs) {
        Ok(model) => model,
        Err(error) => return error.into_compile_error(),
    };
    if let Err(error) = model.require_derive(&item, &PLACEMENT) {
        // The struct stays, so the placement is the only error.
        let item = model.kept_item(&item);
        let error = error.into_compile_error();
        return quote!(#item #error);
    }
    expand_struct(item, &model).unwrap_or_else(syn::Error::into_compile_error)
}

fn expand_struct(mut item: ItemStruct, model: &ModelAttributes) -> syn::Result<TokenStream> {
    let table = model.table_name.as_ref().ok_or_else(|| {
        syn::Error::new(
            item.ident.span(),
            "#[bulk_insertable] needs the model's table: add `#[diesel(table_name = ...)]`",
        )
    })?;
    require_null_for_none(&mut item.attrs, model, "#[bulk_insertable]")?;
    let bulk = bulk_impls(&item, table)?;
    Ok(quote! {
        #item
        const _: () = { #bulk };
    })
}

/// The per-backend bulk-insert impls: binary COPY on PostgreSQL, multi-row INSERT elsewhere.
/// Each is emitted only when `batchframework_diesel` has that backend's feature.
pub(crate) fn bulk_impls(item: &ItemStruct, table: &Path) -> syn::Result<TokenStream> {
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

/// Bulk inserts bind a NULL for `None` instead of writing `DEFAULT`: PostgreSQL's `COPY` has no
/// `DEFAULT`, and SQLite can only batch rows without it. Adds the Diesel option unless present;
/// refuses an explicit `true`.
pub(crate) fn require_null_for_none(
    attrs: &mut Vec<Attribute>,
    model: &ModelAttributes,
    macro_name: &str,
) -> syn::Result<()> {
    match &model.treat_none_as_default_value {
        Some(value) if value.value => Err(syn::Error::new(
            value.span(),
            format!(
                "{macro_name} bulk inserts need `treat_none_as_default_value = false` \
                 (COPY has no DEFAULT); remove this option and it is set for you"
            ),
        )),
        Some(_) => Ok(()),
        None => {
            let option = quote!(#[diesel(treat_none_as_default_value = false)]);
            attrs.extend(Attribute::parse_outer.parse2(option)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insertable_struct_gets_the_bulk_impls() {
        let out = expand(
            quote!(),
            quote! {
                #[derive(Insertable)]
                #[diesel(table_name = cards)]
                struct NewCard { player_id: i64, cardid: i32 }
            },
        )
        .to_string();
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("const COLUMNS : usize = 2usize"), "{out}");
        assert!(
            out.contains("# [diesel (treat_none_as_default_value = false)]"),
            "{out}"
        );
        assert!(out.contains("insert_into (cards :: table)"), "{out}");
    }

    #[test]
    fn a_struct_without_an_insertable_derive_below_it_is_refused_and_kept() {
        let message = "`#[bulk_insertable]` must be written above `#[derive(Insertable)]`";
        // Written below the derive: the derive is gone from the input, and so is what would
        // introduce `#[diesel(...)]`, which is removed with it.
        let out = expand(
            quote!(),
            quote! { #[diesel(table_name = cards)] struct NewCard { cardid: i32 } },
        )
        .to_string();
        assert!(out.contains(message), "{out}");
        assert!(out.contains("struct NewCard { cardid : i32 }"), "{out}");
        assert!(!out.contains("# [diesel"), "{out}");
        // Another Diesel derive below it still needs its options.
        let out = expand(
            quote!(),
            quote! { #[derive(Queryable)] #[diesel(table_name = cards)] struct Card { cardid: i32 } },
        )
        .to_string();
        assert!(out.contains(message), "{out}");
        assert!(out.contains("only `Queryable`"), "{out}");
        assert!(out.contains("# [diesel (table_name = cards)]"), "{out}");
    }

    #[test]
    fn misuse_is_a_compile_error() {
        for (args, item, message) in [
            (
                quote!(copy),
                quote! { #[derive(Insertable)] #[diesel(table_name = cards)] struct C { a: i32 } },
                "takes no arguments",
            ),
            (
                quote!(),
                quote! { #[derive(Insertable)] struct C { a: i32 } },
                "needs the model's table",
            ),
            (quote!(), quote! { enum C { A } }, "named fields"),
            (
                quote!(),
                quote! {
                    #[derive(Insertable)]
                    #[diesel(table_name = cards)]
                    struct C { #[diesel(embed)] inner: Inner }
                },
                "does not support `#[diesel(embed)]`",
            ),
        ] {
            let out = expand(args, item).to_string();
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "{message}: {out}");
        }
    }
}
