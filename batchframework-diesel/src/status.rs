//! The operation's two states as stored: [`Status`] (`unprocessed`, `running`, `finished`) and
//! [`OperationResult`] (`not-available`, `successful`, `failed`), the strings of
//! ievv_batchframework's columns, in Diesel and in serde.
//!
//! Apart from the model, below the error type that reports them, so that neither the model nor
//! the errors import each other.

use std::fmt;
use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// Maps a Rust enum to `ievv_batchframework`'s string values in a `VARCHAR` column, on every
/// backend, and to the same strings in serde.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name { $( $(#[$vmeta])* $variant, )* }

        impl $name {
            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> std::result::Result<Self, UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )*
                    _ => Err(UnknownValue {
                        type_name: stringify!($name),
                        value: text.to_owned(),
                        expected: &[$($text),*],
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&text, &[$($text),*])
                })
            }
        }

        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(String::from_sql(bytes)?.parse()?)
            }
        }
    };
}

string_enum! {
    /// Where an operation is in its lifecycle: `unprocessed → running → finished`.
    pub enum Status {
        /// Created asynchronously, waiting to be picked up.
        Unprocessed = "unprocessed",
        /// Started (synchronous operations start here).
        Running = "running",
        /// Done; the [`OperationResult`] says how it went.
        Finished = "finished",
    }
}

string_enum! {
    /// How a finished operation went.
    pub enum OperationResult {
        /// Not finished yet.
        NotAvailable = "not-available",
        /// Finished without error.
        Successful = "successful",
        /// Finished with an error; the output data usually says which.
        Failed = "failed",
    }
}

/// A status or result string that is not one of the known values (e.g. written by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {type_name}; expected one of {expected:?}")]
pub struct UnknownValue {
    type_name: &'static str,
    value: String,
    expected: &'static [&'static str],
}

impl UnknownValue {
    /// The text that was not recognised.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The values that would have been accepted.
    pub fn expected(&self) -> &'static [&'static str] {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings_round_trip_and_unknown_ones_are_rejected() {
        for status in [Status::Unprocessed, Status::Running, Status::Finished] {
            assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
        }
        for result in [
            OperationResult::NotAvailable,
            OperationResult::Successful,
            OperationResult::Failed,
        ] {
            assert_eq!(
                result.as_str().parse::<OperationResult>().ok(),
                Some(result)
            );
        }
        let error = "done".parse::<Status>().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                r#"`done` is not a valid Status; expected one of ["unprocessed", "running", "finished"]"#
            )
        );
    }
}
