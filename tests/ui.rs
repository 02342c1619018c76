//! Compile-fail tests of the proc macros: misuse is a compile error that points at the offending
//! tokens and says what to do. Expected output is in `ui/*.stderr`; regenerate it with
//! `TRYBUILD=overwrite cargo test -p batchframework-tests ui::` after a deliberate change, and
//! read the diff.

#[test]
fn macro_misuse_is_reported_at_the_offending_tokens() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
