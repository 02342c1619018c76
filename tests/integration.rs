//! The integration suite: every generic test runs against each enabled backend (features
//! `postgres`, `sqlite`, `mysql`), named `<module>::<backend>::<test>`.

// Tests fail by panicking; unwrap/expect are how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod actions;
mod admin;
mod batches;
mod bulk;
mod bulk_stream;
mod clock;
mod concurrency;
mod connection_loss;
mod constraints;
mod context;
mod deadlocks;
mod due;
mod faults;
mod keeper_prune;
mod layers;
mod lifecycle;
mod metrics;
mod migrations;
mod model;
mod msrv;
mod overview;
mod packets;
mod plans;
mod pool;
mod processes;
mod prune;
mod queries;
mod registry;
mod scale;
mod time_zone;
mod tracking;
mod transactions;
mod ui;
mod wakeup;
mod worker;
mod worker_types;
mod workflows;
