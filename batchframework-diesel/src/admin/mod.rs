//! The operators' API: what an admin page or a command line needs to look after the queues
//! without writing SQL, the same on every backend and on pooled connections.
//!
//! * See the queues: [`queue_overview`] (due, delayed and running work, recent successes and
//!   failures, lag, throughput, whether paused), from indexes whose reads stop at a limit.
//! * See what went wrong: [`latest_failures`], newest first, however many successes since.
//! * See how fast work goes: [`finishes_per_minute`] by result, for a chart.
//! * Find operations: [`BatchOperation::find`](crate::BatchOperation::find) and
//!   [`OperationFilter`](crate::OperationFilter) (newest first, keyset pages).
//! * Act on them: [`retry`] a failure or [`retry_failed`] every failure matching a filter;
//!   [`cancel`] pending or running work; [`pause_queue`] and [`resume_queue`]; prune history
//!   with [`Prune`](crate::Prune).
//!
//! Each change to an operation is made by an `UPDATE` guarded by the state it was read in, so
//! an operator racing a worker either wins or gets a typed error, and nothing is changed twice.
//!
//! ```
//! use batchframework_diesel::admin::{self, Cancelled};
//! use batchframework_diesel::{BatchOperation, OperationResult, Status};
//! # use diesel::Connection;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
//! # batchframework_diesel::run_migrations(&mut conn)?;
//!
//! // A failure is queued again, its output kept under `previous_attempts`:
//! let mut import = BatchOperation::create_asynchronous("import-users").insert(&mut conn)?;
//! import.mark_as_running(&mut conn)?;
//! import.finish_failed(&mut conn, &"file not found")?;
//! let import = admin::retry(&mut conn, import.id())?;
//! assert_eq!(import.status(), Status::Unprocessed);
//!
//! // Pending work is cancelled: finished as failed, the record kept.
//! let Cancelled::Finished(import) = admin::cancel(&mut conn, import.id(), "admin")? else {
//!     unreachable!("it was pending")
//! };
//! assert_eq!(import.result(), OperationResult::Failed);
//!
//! // Workers claim nothing from a paused queue until it is resumed.
//! admin::pause_queue(&mut conn, "default")?;
//! assert_eq!(admin::paused_queues(&mut conn)?, ["default"]);
//! admin::resume_queue(&mut conn, "default")?;
//! # Ok(())
//! # }
//! ```

mod cancel;
mod failures;
mod overview;
mod queues;
mod retry;
mod throughput;

pub use crate::overview::Count;
pub use cancel::{cancel, Cancelled};
pub use failures::latest_failures;
pub use overview::{queue_overview, QueueOverview, RecentCounts};
pub use queues::{pause_queue, paused_queues, resume_queue};
pub use retry::{retry, retry_failed};
pub use throughput::{finishes_per_minute, MinuteCounts, Throughput};
