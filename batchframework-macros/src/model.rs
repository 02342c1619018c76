//! What `#[batch_tracked]` and `#[bulk_insertable]` read from a Diesel model's own attributes
//! (`#[derive(...)]` and `#[diesel(...)]`), parsed once, and the check that they were written
//! above the derive.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Ident, ItemStruct, LitBool, Path};

/// Every derive of `diesel_derives`: the derives that accept `#[diesel(...)]` attributes.
const DIESEL_DERIVES: &[&str] = &[
    "AsChangeset",
    "AsExpression",
    "Associations",
    "DieselNumericOps",
    "FromSqlRow",
    "HasQuery",
    "Identifiable",
    "Insertable",
    "MultiConnection",
    "QueryId",
    "Queryable",
    "QueryableByName",
    "Selectable",
    "SqlType",
    "ValidGrouping",
];

/// The Diesel derives that read a model's fields, and so must see the `batchoperation_id` field
/// `#[batch_tracked]` adds.
pub(crate) const DIESEL_MODEL_DERIVES: &[&str] = &[
    "Insertable",
    "Queryable",
    "Selectable",
    "QueryableByName",
    "Identifiable",
    "AsChangeset",
    "Associations",
    "HasQuery",
];

/// A struct's derives and `#[diesel(...)]` options, as an attribute macro on it sees them.
///
/// An attribute macro receives only the attributes written *below* it (with `#[cfg_attr]` already
/// resolved): a `#[derive(...)]` above it has already run on the struct as it was and is gone from
/// the input. So a model whose macro was written below the derive looks exactly like one with
/// no derive at all.
pub(crate) struct ModelAttributes {
    /// The last path segment of every derived trait (`Insertable` for `diesel::Insertable`).
    derives: Vec<Ident>,
    /// `#[diesel(table_name = ...)]`.
    pub(crate) table_name: Option<Path>,
    /// The first `#[diesel(treat_none_as_default_value = ...)]` on the struct.
    pub(crate) treat_none_as_default_value: Option<LitBool>,
}

impl ModelAttributes {
    pub(crate) fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut model = ModelAttributes {
            derives: Vec::new(),
            table_name: None,
            treat_none_as_default_value: None,
        };
        for attr in attrs {
            if attr.path().is_ident("derive") {
                attr.parse_nested_meta(|derive| {
                    if let Some(last) = derive.path.segments.last() {
                        model.derives.push(last.ident.clone());
                    }
                    Ok(())
                })?;
            } else if attr.path().is_ident("diesel") {
                attr.parse_nested_meta(|option| {
                    if option.path.is_ident("table_name") {
                        model.table_name = Some(option.value()?.parse::<Path>()?);
                    } else if option.path.is_ident("treat_none_as_default_value") {
                        let value = option.value()?.parse::<LitBool>()?;
                        model.treat_none_as_default_value.get_or_insert(value);
                    } else {
                        skip_option_value(&option)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(model)
    }

    /// Whether the struct derives `name` (by the last segment of the derive's path).
    pub(crate) fn derives(&self, name: &str) -> bool {
        self.derives.iter().any(|d| d == name)
    }

    /// The struct's tokens to emit next to a placement error, so that code using the struct
    /// still resolves and a derive that already ran above the macro finds its type. Without a
    /// Diesel derive in sight, its `#[diesel(...)]` attributes (struct and fields) are removed:
    /// nothing below the macro would introduce them, and an "unknown attribute" error would only
    /// repeat the placement error.
    pub(crate) fn kept_item(&self, item: &ItemStruct) -> TokenStream {
        if DIESEL_DERIVES.iter().any(|name| self.derives(name)) {
            return item.to_token_stream();
        }
        let mut item = item.clone();
        item.attrs.retain(|a| !a.path().is_ident("diesel"));
        for field in item.fields.iter_mut() {
            field.attrs.retain(|a| !a.path().is_ident("diesel"));
        }
        item.into_token_stream()
    }

    /// Refuses a struct on which the macro sees none of the derives it works with: it was written
    /// below the derive (which then ran without the macro's changes), or the struct has none.
    pub(crate) fn require_derive(
        &self,
        item: &ItemStruct,
        placement: &Placement,
    ) -> syn::Result<()> {
        if placement.derives.iter().any(|name| self.derives(name)) {
            return Ok(());
        }
        let table = self
            .table_name
            .as_ref()
            .map_or_else(|| "...".to_owned(), path_text);
        let Placement {
            attribute,
            derive,
            adds,
            derives,
            example,
        } = placement;
        let expected = match derives {
            [only] => format!("`{only}` derive"),
            [first @ .., last] => format!("Diesel derive ({} or {last})", first.join(", ")),
            [] => String::new(),
        };
        let seen = if self.derives.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self.derives.iter().map(Ident::to_string).collect();
            format!(", only `{}`", names.join(", "))
        };
        Err(syn::Error::new(
            item.ident.span(),
            format!(
                "`#[{attribute}]` must be written above `#[derive({derive})]`: it adds {adds}, \
                 which the derive must see\n\
                 note: it sees no {expected} below it{seen}: the derive is above it (and has \
                 already run without the change) or missing\n\
                 help: the correct order is `#[{attribute}]`, then {example}, then \
                 `#[diesel(table_name = {table})]`, then `struct {name}`",
                name = item.ident,
            ),
        ))
    }
}

/// Where a macro must be written: the derives it must precede, for [`ModelAttributes::require_derive`].
pub(crate) struct Placement {
    /// The macro's name, without `#[]`.
    pub(crate) attribute: &'static str,
    /// How the derive it must precede is written in the message: `...` or `Insertable`.
    pub(crate) derive: &'static str,
    /// What it adds that the derive must see.
    pub(crate) adds: &'static str,
    /// The derives it works with; one of them must follow it.
    pub(crate) derives: &'static [&'static str],
    /// The derive of the `help:` line, as written there.
    pub(crate) example: &'static str,
}

/// A path as written, without the spaces of its token stream: `crate::schema::players`.
fn path_text(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Skips the tokens of a `#[diesel(...)]` option this crate does not read.
pub(crate) fn skip_option_value(option: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    let input = option.input;
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}
