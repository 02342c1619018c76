//! Procedural macros for `batchframework-diesel`.
//!
//! This crate will hold `#[batch_tracked]`, which gives a Diesel model a `batchoperation_id`
//! tracking column. It is re-exported by `batchframework_diesel`; depend on that crate instead.
