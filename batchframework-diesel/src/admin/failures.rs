//! The latest failures, for an operator's first look at what went wrong.

use crate::backend::{BatchConnection, Storage};
use crate::error::Result;
use crate::operation::BatchOperation;

/// The `limit` operations that failed last, newest first by finish time.
///
/// One backward read of an index of failures alone, so it costs the same after a million
/// successes as after none (newest first by id, as
/// [`OperationFilter::result`](crate::OperationFilter::result) pages, would read past every
/// success since the last failure).
///
/// ```
/// # use batchframework_diesel::{admin, BatchOperation};
/// # use diesel::Connection;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = diesel::SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let mut op = BatchOperation::create_synchronous("import").insert(&mut conn)?;
/// op.finish_failed(&mut conn, &"file not found")?;
/// BatchOperation::create_synchronous("import").insert(&mut conn)?.finish(&mut conn)?;
///
/// let failures = admin::latest_failures(&mut conn, 10)?;
/// assert_eq!(failures.iter().map(BatchOperation::id).collect::<Vec<_>>(), [op.id()]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// Database errors ([`Error::NotMigrated`](crate::Error::NotMigrated) before the migrations).
pub fn latest_failures<C: BatchConnection>(
    conn: &mut C,
    limit: u32,
) -> Result<Vec<BatchOperation>> {
    Ok(conn.storage().latest_failures(limit)?)
}
