//! Context objects: the application row an operation is about (a blog post, a game).
//!
//! The operation stores the object's *type key* and *primary key as text*, so any table can be a
//! context without a foreign key per table, as ievv_batchframework's generic relation does.

use std::borrow::Cow;
use std::fmt;

/// A model that batch operations can be about.
///
/// Derive it on a Diesel model: the type key is the model's table name and the id its primary
/// key (integer, text or, with the `uuid` feature, UUID).
///
/// ```
/// use batchframework_diesel::{BatchOperation, ContextObject, OperationFilter};
/// use diesel::prelude::*;
///
/// diesel::table! {
///     games (id) { id -> Integer, name -> Text, }
/// }
///
/// #[derive(Queryable, Identifiable, ContextObject)]
/// #[diesel(table_name = games)]
/// struct Game { id: i32, name: String }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let game = Game { id: 3, name: "chess".into() };
/// assert_eq!(game.context_object_type(), "games");
/// assert_eq!(game.context_object_id().as_str(), "3");
///
/// BatchOperation::create_synchronous("deal-cards").context_object(&game).insert(&mut conn)?;
/// assert_eq!(OperationFilter::new().context_object(&game).count(&mut conn)?, 1);
/// # Ok(())
/// # }
/// ```
///
/// Or implement it by hand, e.g. for a key that should outlive a table rename:
///
/// ```
/// use batchframework_diesel::{ContextId, ContextObject};
/// use std::borrow::Cow;
///
/// struct Game { id: i32 }
///
/// impl ContextObject for Game {
///     fn context_object_type(&self) -> Cow<'static, str> { "games".into() }
///     fn context_object_id(&self) -> ContextId { self.id.into() }
/// }
/// ```
pub trait ContextObject {
    /// The type key stored in `context_object_type`; by convention the model's table name. At
    /// most 255 characters.
    fn context_object_type(&self) -> Cow<'static, str>;

    /// The object's primary key, stored as text in `context_object_id`. At most 255 characters.
    fn context_object_id(&self) -> ContextId;
}

impl<T: ContextObject + ?Sized> ContextObject for &T {
    fn context_object_type(&self) -> Cow<'static, str> {
        (**self).context_object_type()
    }

    fn context_object_id(&self) -> ContextId {
        (**self).context_object_id()
    }
}

/// A context object reference given as plain values, for callers that hold a type key and id but
/// not the model (a worker, a command-line tool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextRef {
    type_key: Cow<'static, str>,
    id: ContextId,
}

impl ContextRef {
    /// A reference to the object with this type key and primary key.
    pub fn new(type_key: impl Into<Cow<'static, str>>, id: impl Into<ContextId>) -> Self {
        ContextRef {
            type_key: type_key.into(),
            id: id.into(),
        }
    }

    /// The type key and id of any context object, captured so a builder can carry them.
    pub(crate) fn of(context: &(impl ContextObject + ?Sized)) -> Self {
        ContextRef {
            type_key: context.context_object_type(),
            id: context.context_object_id(),
        }
    }

    /// The type key and the id's text, as stored and queried.
    pub(crate) fn parts(&self) -> (&str, &str) {
        (&self.type_key, self.id.as_str())
    }

    /// The type key and the id's text, owned, for the operation that stores them.
    pub(crate) fn into_parts(self) -> (String, String) {
        (self.type_key.into_owned(), self.id.0)
    }
}

/// `blog_posts #17`: the type key and the id.
impl fmt::Display for ContextRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{}", self.type_key, self.id)
    }
}

impl ContextObject for ContextRef {
    fn context_object_type(&self) -> Cow<'static, str> {
        self.type_key.clone()
    }

    fn context_object_id(&self) -> ContextId {
        self.id.clone()
    }
}

/// A context object's primary key, in the text form it is stored in.
///
/// Integers are written in decimal and UUIDs in their hyphenated lowercase form, so the same key
/// always gives the same text and queries by context object find it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(String);

impl ContextId {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! context_id_from_integer {
    ($($int:ty),*) => {$(
        impl From<$int> for ContextId {
            fn from(id: $int) -> Self {
                ContextId(id.to_string())
            }
        }
        impl From<&$int> for ContextId {
            fn from(id: &$int) -> Self {
                ContextId(id.to_string())
            }
        }
    )*};
}
context_id_from_integer!(i16, i32, i64, u16, u32, u64);

impl From<String> for ContextId {
    fn from(id: String) -> Self {
        ContextId(id)
    }
}

impl From<&String> for ContextId {
    fn from(id: &String) -> Self {
        ContextId(id.clone())
    }
}

impl From<&str> for ContextId {
    fn from(id: &str) -> Self {
        ContextId(id.to_owned())
    }
}

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl From<uuid::Uuid> for ContextId {
    fn from(id: uuid::Uuid) -> Self {
        ContextId(id.hyphenated().to_string())
    }
}

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl From<&uuid::Uuid> for ContextId {
    fn from(id: &uuid::Uuid) -> Self {
        ContextId(id.hyphenated().to_string())
    }
}
