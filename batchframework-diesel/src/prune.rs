//! Deleting old finished operations in bounded batches: [`Prune`].

use chrono::{DateTime, Utc};

use crate::backend::{BatchConnection, Storage, UtcDateTime};
use crate::error::Result;
use crate::filter::{Keyset, OperationFilter, OperationOrder};
use crate::status::OperationResult;

/// Deletes finished operations that finished before an instant, a batch at a time, so the
/// operation table stays small without one long-locking `DELETE`.
///
/// Only `finished` operations are ever deleted: `unprocessed` and `running` ones stay however
/// old they are, and so does an operation that finished after the instant. "Older" is by
/// `finished_datetime`, so an operation that ran for weeks is kept as long after it finished as
/// one that ran for a second. Rows of your own tables tagged with a deleted operation keep
/// their data: their `batchoperation_id` is set to NULL (the tracking column is
/// `ON DELETE SET NULL`).
///
/// [`run`](Self::run) deletes at most [`batch_size`](Self::batch_size) operations per
/// statement (10,000 unless set), lowest ids first, each statement committed on its own, until a
/// batch deletes fewer: it locks only the rows it deletes, and only while their statement runs.
/// (On MySQL/MariaDB a batch larger than 10,000 is deleted in statements of 10,000.)
/// Call it outside a transaction; inside one, every batch's locks are held until your commit.
///
/// It is a builder rather than a method of [`OperationFilter`] because it deletes: it always
/// needs the instant, and its conditions cannot select `unprocessed` or `running` operations.
///
/// ```
/// use batchframework_diesel::{BatchOperation, OperationFilter, OperationResult, Prune};
/// use chrono::{Duration, Utc};
/// # use diesel::{Connection, SqliteConnection};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # batchframework_diesel::run_migrations(&mut conn)?;
/// let mut failed = BatchOperation::create_synchronous("import").insert(&mut conn)?;
/// failed.finish_failed(&mut conn, &"file not found")?;
/// let mut done = BatchOperation::create_synchronous("import").insert(&mut conn)?;
/// done.finish(&mut conn)?;
/// BatchOperation::create_asynchronous("import").insert(&mut conn)?; // still pending
///
/// // The nightly clean-up: failed imports are kept for 30 days. Ours failed just now.
/// let deleted = Prune::finished_before(Utc::now() - Duration::days(30))
///     .operation_type("import")
///     .result(OperationResult::Failed)
///     .run(&mut conn)?;
/// assert_eq!(deleted, 0);
///
/// // Everything finished so far, in statements of at most 1,000 rows; the pending one stays.
/// let deleted = Prune::finished_before(Utc::now() + Duration::seconds(1))
///     .batch_size(1_000)
///     .run(&mut conn)?;
/// assert_eq!(deleted, 2);
/// assert_eq!(OperationFilter::new().count(&mut conn)?, 1);
/// # Ok(())
/// # }
/// ```
///
/// Each batch finds its rows by walking the primary key from where the previous batch ended
/// (`id > <its highest id>`), so the whole prune reads each operation at most once: its cost
/// grows with the operations it deletes and those it steps over (of other types or results, or
/// not old enough), not with the table's size, and a batch never reads again what an earlier
/// one kept. On PostgreSQL a batch is one statement, `DELETE FROM batchframework_batchoperation
/// WHERE <conditions> AND id = ANY(ARRAY(SELECT id FROM batchframework_batchoperation WHERE
/// <conditions> ORDER BY id LIMIT n)) RETURNING id`; on SQLite the same with `id IN (SELECT
/// ...)`. On MySQL/MariaDB, which cannot `LIMIT` such a subquery (and which plan
/// `DELETE ... ORDER BY id LIMIT n` through a status index, sorting every finished operation
/// each time), it is `SELECT id ... WHERE <conditions> ORDER BY id LIMIT n`, which takes no
/// locks, then `DELETE ... WHERE <conditions> AND id IN (<those ids>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Prune deletes nothing until `run`"]
pub struct Prune {
    filter: OperationFilter,
    batch_size: u32,
}

impl Prune {
    /// The most operations one statement deletes unless [`batch_size`](Self::batch_size) says
    /// otherwise: large enough that pruning a million operations takes a hundred statements,
    /// small enough that each holds its locks for well under a second.
    pub const DEFAULT_BATCH_SIZE: u32 = 10_000;

    /// Finished operations whose `finished_datetime` is strictly before `instant` (any
    /// instant; one outside the years 0001–9999 is clamped into them, which selects the same
    /// operations).
    pub fn finished_before(instant: DateTime<Utc>) -> Self {
        Prune {
            filter: OperationFilter {
                finished_before: Some(UtcDateTime(instant).clamped().0),
                order: OperationOrder::IdAscending,
                ..OperationFilter::default()
            },
            batch_size: Self::DEFAULT_BATCH_SIZE,
        }
    }

    /// Only operations of this type, e.g. to keep some types' history longer than others'.
    pub fn operation_type(mut self, operation_type: impl Into<String>) -> Self {
        self.filter.operation_type = Some(operation_type.into());
        self
    }

    /// Only operations with this result, e.g. to keep failures longer than successes.
    /// [`OperationResult::NotAvailable`] matches nothing: a finished operation has a result.
    pub fn result(mut self, result: OperationResult) -> Self {
        self.filter.result = Some(result);
        self
    }

    /// The most operations one statement deletes ([`DEFAULT_BATCH_SIZE`](Self::DEFAULT_BATCH_SIZE)
    /// unless set; 0 counts as 1). Smaller batches hold locks for less time and take more
    /// statements.
    pub fn batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Deletes the matching operations, batch by batch, and returns how many it deleted.
    ///
    /// A batch that fails (the connection is lost) returns its error; the batches before it
    /// stay deleted, and running it again carries on where it stopped.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database) or
    /// [`Error::NotMigrated`](crate::Error::NotMigrated) from the database.
    pub fn run<C: BatchConnection>(&self, conn: &mut C) -> Result<u64> {
        let mut deleted = 0u64;
        let mut after = None;
        loop {
            let batch = self.run_batch(conn, after)?;
            deleted += batch.deleted;
            match batch.next_after {
                Some(id) => after = Some(id),
                None => return Ok(deleted),
            }
        }
    }

    /// One batch: deletes at most [`batch_size`](Self::batch_size) matching operations with an
    /// id above `after`, lowest ids first.
    pub(crate) fn run_batch<C: BatchConnection>(
        &self,
        conn: &mut C,
        after: Option<i64>,
    ) -> Result<PruneBatch> {
        let batch = OperationFilter {
            limit: Some(self.batch_size),
            ..self.filter.clone()
        };
        let keyset = after.map(|id| Keyset { id, created: None });
        let done = conn.storage().delete_finished(&batch, keyset)?;
        Ok(PruneBatch {
            deleted: done.count as u64,
            // The next batch starts where this one ended, in the primary key: operations it
            // stepped over (kept types or results, or not old enough) are not read again. A
            // batch short of its size was the last.
            next_after: done
                .highest_id
                .filter(|_| done.count >= self.batch_size as usize),
        })
    }
}

/// What one batch of a [`Prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PruneBatch {
    /// How many operations it deleted.
    pub(crate) deleted: u64,
    /// The id the next batch starts after; `None` when this batch was the last.
    pub(crate) next_after: Option<i64>,
}
