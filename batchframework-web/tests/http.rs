//! The dashboard over HTTP on every backend: each page, action, security rule and header,
//! through `tower::ServiceExt::oneshot` on the router mounted as an application mounts it, with
//! the database checked after each action against what the admin API says it does.
//!
//! These run without a browser or a socket, so they cover every route and refusal quickly and
//! exactly; `tests/browser.rs` checks what only a browser shows (the script, the layout).
//! Tests are named `http::<module>::<backend>::<test>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Without a backend feature, the generic tests are instantiated for none.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code, unused_imports)
)]

mod http {
    mod actions;
    mod escaping;
    mod headers;
    mod pages;
    mod security;
    mod support;
}
