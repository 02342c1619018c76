//! End-to-end tests of the `batchframework` binary: the real command, run against a throwaway
//! database on each backend (`<module>::postgres::...`, `::sqlite::`, `::mysql::`), and the
//! commands that need no database (`offline::...`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "cli/support.rs"]
mod support;

#[path = "cli/admin.rs"]
mod admin;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/inspect.rs"]
mod inspect;
#[path = "cli/offline.rs"]
mod offline;
#[path = "cli/prune.rs"]
mod prune;
#[path = "cli/serve.rs"]
mod serve;
