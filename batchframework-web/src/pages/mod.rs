//! The pages: each a handler that reads through the admin API and renders HTML with maud.

pub(crate) mod chart;
pub(crate) mod layout;
pub(crate) mod operation;
pub(crate) mod operations;
pub(crate) mod overview;
pub(crate) mod prune;
