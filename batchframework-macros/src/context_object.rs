//! `#[derive(ContextObject)]`: reads the model's Diesel attributes and implements the trait.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr};

const HELP: &str = "help: the correct format looks like \
                    `#[context_object(type_key = \"blog_posts\")]`";

/// Expands `#[derive(ContextObject)]` on the parsed input.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields =
        match &input.data {
            Data::Struct(data) => &data.fields,
            Data::Enum(data) => return Err(syn::Error::new(
                data.enum_token.span,
                "ContextObject can only be derived for a struct with named fields (a Diesel model)",
            )),
            Data::Union(data) => return Err(syn::Error::new(
                data.union_token.span,
                "ContextObject can only be derived for a struct with named fields (a Diesel model)",
            )),
        };
    let attributes = Attributes::parse(input)?;
    let type_key = match attributes.type_key {
        Some(key) => key.value(),
        None => attributes
            .table_name
            .unwrap_or_else(|| format!("{}s", snake_case(&input.ident.to_string()))),
    };
    let key_field = attributes
        .primary_key
        .unwrap_or_else(|| Ident::new("id", Span::call_site()));
    let has_key_field = matches!(fields, Fields::Named(named)
        if named.named.iter().any(|f| f.ident.as_ref() == Some(&key_field)));
    if !has_key_field {
        return Err(syn::Error::new(
            input.ident.span(),
            format!(
                "ContextObject needs the primary key field `{key_field}`; name another one with \
                 `#[diesel(primary_key(field))]`"
            ),
        ));
    }

    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        const _: () = {
            impl #impl_generics ::batchframework_diesel::ContextObject for #name #type_generics
            #where_clause
            {
                fn context_object_type(&self) -> ::std::borrow::Cow<'static, str> {
                    ::std::borrow::Cow::Borrowed(#type_key)
                }

                fn context_object_id(&self) -> ::batchframework_diesel::ContextId {
                    ::batchframework_diesel::ContextId::from(&self.#key_field)
                }
            }
        };
    })
}

/// What the derive reads from `#[diesel(...)]` and `#[context_object(...)]`.
#[derive(Default)]
struct Attributes {
    table_name: Option<String>,
    primary_key: Option<Ident>,
    type_key: Option<LitStr>,
}

impl Attributes {
    fn parse(input: &DeriveInput) -> syn::Result<Self> {
        let mut found = Attributes::default();
        for attr in &input.attrs {
            if attr.path().is_ident("diesel") {
                attr.parse_nested_meta(|option| found.read_diesel_option(option))?;
            } else if attr.path().is_ident("context_object") {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("type_key") {
                        found.type_key = Some(meta.value()?.parse()?);
                        Ok(())
                    } else {
                        Err(meta.error(format!(
                            "unknown context_object option; expected `type_key`\n{HELP}"
                        )))
                    }
                })?;
            }
        }
        Ok(found)
    }

    fn read_diesel_option(&mut self, option: ParseNestedMeta<'_>) -> syn::Result<()> {
        if option.path.is_ident("table_name") {
            let path: syn::Path = option.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a table path, as in `#[diesel(table_name = games)]`",
                )
            })?;
            if let Some(last) = path.segments.last() {
                self.table_name = Some(last.ident.to_string());
            }
        } else if option.path.is_ident("primary_key") {
            let span = option.path.span();
            let mut columns = Vec::new();
            option.parse_nested_meta(|column| {
                columns.push(column.path.require_ident()?.clone());
                Ok(())
            })?;
            match <[Ident; 1]>::try_from(columns) {
                Ok([column]) => self.primary_key = Some(column),
                Err(_) => {
                    return Err(syn::Error::new(
                        span,
                        "ContextObject needs a single-column primary key; implement \
                         `batchframework_diesel::ContextObject` by hand for a composite key",
                    ))
                }
            }
        } else {
            // Other Diesel options (check_for_backend, belongs_to, sql_type = Nullable<Text>,
            // ...) are Diesel's business: skip their tokens up to the next option.
            crate::model::skip_option_value(&option)?;
        }
        Ok(())
    }
}

/// Diesel's default table name is the struct name in snake case plus `s`; match it exactly.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            if i != 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pretty;

    fn expand_str(input: TokenStream) -> String {
        crate::derive_context_object_inner(input).to_string()
    }

    fn snapshot(input: TokenStream) -> syn::Result<String> {
        pretty(crate::derive_context_object_inner(input))
    }

    /// The type key is the last segment of `table_name`; other Diesel options are skipped.
    #[test]
    fn table_name() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[diesel(table_name = crate::schema::games, check_for_backend(diesel::pg::Pg))]
            #[diesel(sql_type = Nullable<Text>, belongs_to(User, foreign_key = owner))]
            struct Game { id: i32, name: String }
        })?);
        Ok(())
    }

    /// Without `table_name`, the type key is Diesel's default table name.
    #[test]
    fn default_key() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! { struct BlogPost { id: i64 } })?);
        Ok(())
    }

    /// `type_key` overrides the table name.
    #[test]
    fn type_key() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[diesel(table_name = posts)]
            #[context_object(type_key = "blog-post")]
            struct Post { id: i64 }
        })?);
        Ok(())
    }

    /// The id is the field named by `primary_key`; generics go on the impl.
    #[test]
    fn custom_primary_key() -> syn::Result<()> {
        insta::assert_snapshot!(snapshot(quote! {
            #[diesel(table_name = posts, primary_key(uuid))]
            struct Post<'a> { uuid: String, title: &'a str }
        })?);
        Ok(())
    }

    #[test]
    fn misuse_is_a_compile_error() {
        for (input, message) in [
            (quote! { enum E { A } }, "only be derived for a struct"),
            (
                quote! { struct NoId { name: String } },
                "needs the primary key field `id`",
            ),
            (
                quote! { #[diesel(primary_key(a, b))] struct Pair { a: i32, b: i32 } },
                "single-column primary key",
            ),
            (
                quote! { #[context_object(key = "x")] struct T { id: i32 } },
                "expected `type_key`",
            ),
        ] {
            let out = expand_str(input);
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "{out}");
        }
    }
}
