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

/// Expands `#[bulk_insertable]` on the parsed item. A struct written without an `Insertable`
/// derive below the attribute is kept, next to the placement error, so that the error is the only
/// one.
pub(crate) fn expand(args: TokenStream, item: syn::Item) -> syn::Result<TokenStream> {
    if let Some(first) = args.into_iter().next() {
        return Err(syn::Error::new(
            first.span(),
            "#[bulk_insertable] takes no arguments",
        ));
    }
    let item = match item {
        syn::Item::Struct(item) => item,
        other => return Err(not_a_struct("bulk_insertable", other.span())),
    };
    let model = ModelAttributes::parse(&item.attrs)?;
    if let Err(error) = model.require_derive(&item, &PLACEMENT) {
        let item = model.kept_item(&item);
        let error = error.into_compile_error();
        return Ok(quote!(#item #error));
    }
    expand_struct(item, &model)
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

/// The bulk-insert impls: `BulkRow` (the row's width and size), and `BulkInsertRows` for each
/// backend `batchframework_diesel` was built with.
///
/// This crate names no backend. The library holds the list: its
/// `__batchframework_for_each_backend!(callback)` calls `callback! { <how>, <connection type> }`
/// once per enabled backend, `<how>` being `copy_from` (PostgreSQL's binary `COPY`) or
/// `insert_into` (a multi-row `INSERT`, which the library chunks). The callback is a
/// `macro_rules!` generated here, with one arm per way of inserting, local to the caller's
/// `const _: () = { ... };` block.
pub(crate) fn bulk_impls(item: &ItemStruct, table: &Path) -> syn::Result<TokenStream> {
    let name = &item.ident;
    let (impl_generics, type_generics, where_clause) = item.generics.split_for_impl();
    let mut fields = Vec::new();
    // Whether a field is converted before it is bound (`serialize_as`): such a row's values are
    // not its fields, and PostgreSQL's COPY takes it through Diesel's own encoding.
    let mut converted = false;
    if let Fields::Named(named) = &item.fields {
        for field in &named.named {
            converted |= serialized_as(field)?;
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
    // `$connection` is the callback's parameter: `quote!` leaves `$` alone.
    let insert_rows = |body: TokenStream| {
        quote! {
            impl #impl_generics ::batchframework_diesel::__private::BulkInsertRows<$connection>
                for #name #type_generics #where_clause
            {
                fn insert_rows(
                    conn: &mut $connection,
                    rows: ::std::vec::Vec<Self>,
                ) -> ::batchframework_diesel::diesel::QueryResult<usize> {
                    #body
                }
            }
        }
    };
    // PostgreSQL: one binary COPY, each row encoded as the caller's iterator yields it
    // (`CopyRow`, field by field with the SQL type of its column), or, for a row with a field
    // type the library cannot encode itself, collected for Diesel's `from_insertable`.
    let copy_insertable = quote! {
        use ::batchframework_diesel::diesel::prelude::ExecuteCopyFromDsl;
        ::batchframework_diesel::diesel::copy_from(#table::table)
            .from_insertable(rows)
            .execute(conn)
    };
    let mut column_paths = Vec::new();
    for field in &fields {
        let column = stored_column(field)?;
        column_paths.push(quote_spanned!(field.span()=> #table::#column));
    }
    let field_count = i16::try_from(fields.len())
        .map_err(|_| syn::Error::new(item.ident.span(), "too many columns for bulk insert"))?;
    let copy_fields = fields.iter().zip(&column_paths).map(|(f, column)| {
        let ident = &f.ident;
        quote_spanned! {f.ty.span()=>
            ::batchframework_diesel::__private::CopyField::<
                <#column as ::batchframework_diesel::diesel::Expression>::SqlType,
                _,
            >::new(&self.#ident)
        }
    });
    let (streams, write_fields) = if converted {
        (
            quote!(false),
            quote!(::core::result::Result::Err(::core::convert::Into::into(
                "a `serialize_as` field is encoded by Diesel"
            ))),
        )
    } else {
        let fields: Vec<TokenStream> = copy_fields.collect();
        (
            quote!(true #( && (&&#fields).streams() )*),
            quote! {
                #( (&&#fields).write_field(out)?; )*
                ::core::result::Result::Ok(())
            },
        )
    };
    let copy_from = quote! {
        impl #impl_generics ::batchframework_diesel::__private::CopyRow
            for #name #type_generics #where_clause
        {
            const FIELDS: i16 = #field_count;

            #[allow(clippy::needless_borrow)] // `&&` selects the exact encoding or the fallback
            fn streams(&self) -> bool {
                #[allow(unused_imports)]
                use ::batchframework_diesel::__private::{FallbackCopy as _, KnownCopy as _};
                #streams
            }

            #[allow(clippy::needless_borrow)]
            fn write_fields(
                &self,
                out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::batchframework_diesel::__private::EncodeError> {
                #[allow(unused_imports)]
                use ::batchframework_diesel::__private::{FallbackCopy as _, KnownCopy as _};
                #write_fields
            }
        }

        impl #impl_generics ::batchframework_diesel::__private::BulkInsertRows<$connection>
            for #name #type_generics #where_clause
        {
            fn insert_rows(
                conn: &mut $connection,
                rows: ::std::vec::Vec<Self>,
            ) -> ::batchframework_diesel::diesel::QueryResult<usize> {
                #copy_insertable
            }

            fn insert_iter<I>(
                conn: &mut $connection,
                rows: I,
            ) -> ::batchframework_diesel::Result<usize>
            where
                I: ::core::iter::Iterator<Item = Self>,
            {
                ::batchframework_diesel::__private::copy_rows(
                    conn,
                    #table::table,
                    (#(#column_paths,)*),
                    rows,
                    <Self as ::batchframework_diesel::__private::BulkInsertRows<$connection>>::insert_rows,
                )
            }
        }
    };
    // A full chunk (as many rows as the library puts in one statement on this connection) goes
    // as an array: a statement of one shape, which Diesel prepares once per connection and
    // reuses; a shorter chunk as it is. Diesel caches statements by their type, which must be
    // `'static`: a struct with generics (a borrowed row) sends every chunk as it is.
    let insert_into = if !item.generics.params.is_empty() {
        insert_rows(quote! {
            use ::batchframework_diesel::diesel::RunQueryDsl;
            ::batchframework_diesel::diesel::insert_into(#table::table)
                .values(rows)
                .execute(conn)
        })
    } else {
        insert_rows(quote! {
            use ::batchframework_diesel::diesel::RunQueryDsl;
            const FULL: usize = ::batchframework_diesel::__private::chunk_rows::<$connection>(#columns);
            type Full<T> = ::std::boxed::Box<[T; FULL]>;
            match <Full<Self> as ::core::convert::TryFrom<::std::boxed::Box<[Self]>>>::try_from(
                rows.into_boxed_slice(),
            ) {
                ::core::result::Result::Ok(full) => {
                    ::batchframework_diesel::diesel::insert_into(#table::table)
                        .values(full)
                        .execute(conn)
                }
                ::core::result::Result::Err(rows) => {
                    ::batchframework_diesel::diesel::insert_into(#table::table)
                        .values(rows.into_vec())
                        .execute(conn)
                }
            }
        })
    };
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

        #[allow(unused_macros)] // unused when the library was built without a backend
        macro_rules! __batchframework_bulk_insert_rows {
            (copy_from, $connection:ty) => { #copy_from };
            (insert_into, $connection:ty) => { #insert_into };
        }
        ::batchframework_diesel::__batchframework_for_each_backend!(__batchframework_bulk_insert_rows);
    })
}

/// The column a field is stored in: `#[diesel(column_name = ...)]`, or the field's own name.
pub(crate) fn stored_column(field: &syn::Field) -> syn::Result<Option<Ident>> {
    let mut column = field.ident.clone();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|option| {
            if option.path.is_ident("column_name") {
                column = Some(option.value()?.parse::<Ident>()?);
            } else {
                skip_option_value(&option)?;
            }
            Ok(())
        })?;
    }
    Ok(column)
}

/// Whether the field is converted into another type to be inserted
/// (`#[diesel(serialize_as = ...)]`).
fn serialized_as(field: &syn::Field) -> syn::Result<bool> {
    let mut found = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        attr.parse_nested_meta(|option| {
            found |= option.path.is_ident("serialize_as");
            skip_option_value(&option)
        })?;
    }
    Ok(found)
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
    use crate::test_support::pretty;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        crate::bulk_insertable_inner(args, item).to_string()
    }

    /// The option is added and the bulk impls implemented.
    #[test]
    fn insertable() -> syn::Result<()> {
        insta::assert_snapshot!(pretty(crate::bulk_insertable_inner(
            quote!(),
            quote! {
                #[derive(Insertable)]
                #[diesel(table_name = cards)]
                pub struct NewCard {
                    pub player_id: i64,
                    pub cardid: i32,
                }
            },
        ))?);
        Ok(())
    }

    /// An explicit `treat_none_as_default_value = false` is not repeated, and a
    /// `skip_insertion` field is not a column.
    #[test]
    fn options_already_set_and_a_skipped_field() -> syn::Result<()> {
        insta::assert_snapshot!(pretty(crate::bulk_insertable_inner(
            quote!(),
            quote! {
                #[derive(Insertable)]
                #[diesel(table_name = crate::schema::cards, treat_none_as_default_value = false)]
                struct NewCard {
                    player_id: i64,
                    #[diesel(skip_insertion)]
                    cached: Option<String>,
                    #[diesel(treat_none_as_default_value = false)]
                    note: Option<String>,
                }
            },
        ))?);
        Ok(())
    }

    #[test]
    fn a_struct_without_an_insertable_derive_below_it_is_refused_and_kept() {
        let message = "`#[bulk_insertable]` must be written above `#[derive(Insertable)]`";
        // Written below the derive: the derive is gone from the input, and so is what would
        // introduce `#[diesel(...)]`, which is removed with it.
        let out = expand_str(
            quote!(),
            quote! { #[diesel(table_name = cards)] struct NewCard { cardid: i32 } },
        );
        assert!(out.contains(message), "{out}");
        assert!(out.contains("struct NewCard { cardid : i32 }"), "{out}");
        assert!(!out.contains("# [diesel"), "{out}");
        // Another Diesel derive below it still needs its options.
        let out = expand_str(
            quote!(),
            quote! { #[derive(Queryable)] #[diesel(table_name = cards)] struct Card { cardid: i32 } },
        );
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
            let out = expand_str(args, item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "{message}: {out}");
        }
    }
}
