//! The crate's one error type.
//!
//! Every fallible public function returns [`Error`]. Variants carry what a caller needs to react
//! (the operation id, the status actually found, the offending length), and every message says
//! what to do about it.

use crate::status::Status;

/// Shorthand for `Result<T, batchframework_diesel::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `batchframework_diesel`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A lifecycle step was asked of an operation in the wrong status, e.g. `finish` on an
    /// operation that never started, or `mark_as_running` on a finished one. Nothing was
    /// changed, neither in the database nor in the in-memory [`BatchOperation`](crate::BatchOperation).
    #[error(
        "cannot {action} batch operation {id}: it is `{actual}`, and {action} needs it to be \
         `{expected}`; reload it with `BatchOperation::find` to see its current state"
    )]
    IllegalTransition {
        /// The operation's id.
        id: i64,
        /// The step that was refused (`mark_as_running`, `finish`).
        action: &'static str,
        /// The status the step requires.
        expected: Status,
        /// The status the operation actually has (in memory, or in the database when another
        /// connection changed it first).
        actual: Status,
    },

    /// [`admin::retry`](crate::admin::retry) was asked to queue again an operation that
    /// finished successfully: only failed operations are retried. Nothing was changed.
    #[error(
        "cannot retry batch operation {id}: it finished successfully, and only failed \
         operations are retried; start a new operation to run it again"
    )]
    NotFailed {
        /// The operation's id.
        id: i64,
    },

    /// The step raced another connection changing the same operation and the database refused
    /// it: the guarded `UPDATE` found the operation changed while this connection's transaction
    /// still sees the old state (a `REPEATABLE READ` snapshot, the MySQL/MariaDB default), or
    /// the database chose the step as a serialization failure or deadlock victim (PostgreSQL's
    /// serializable snapshots; InnoDB, when two connections update one operation at once). A
    /// deadlock victim's whole transaction is rolled back on MySQL/MariaDB. Nothing was changed:
    /// roll back your transaction, if any, and retry the step.
    #[error(
        "cannot {action} batch operation {id} (expected `{expected}`): another connection changed \
         it concurrently; roll back any transaction and retry the step"
    )]
    Conflict {
        /// The operation's id.
        id: i64,
        /// The step that was refused.
        action: &'static str,
        /// The status the step requires, which this transaction's snapshot still shows.
        expected: Status,
    },

    /// The database rolled back the caller's whole transaction to break a deadlock
    /// (MySQL/MariaDB's InnoDB picks a victim, even of statements that lock rows in the same
    /// table as a worker's claim), so the step could not run again by itself: everything the
    /// transaction did before is undone. Retry the whole transaction.
    #[error(
        "cannot {action}: the database broke a deadlock by rolling back this transaction, with \
         everything it did before; retry the transaction"
    )]
    RolledBack {
        /// The step that was refused.
        action: &'static str,
    },

    /// The operation's row no longer exists (it was removed, or never committed).
    #[error("batch operation {id} does not exist (it was removed or never committed)")]
    NotFound {
        /// The id that was looked up.
        id: i64,
    },

    /// The operation is not the parent of a batch (or no longer exists).
    #[error(
        "batch operation {id} is not a batch's parent (or no longer exists); batches are made \
         with Registry::batch"
    )]
    NotABatch {
        /// The id that was looked up.
        id: i64,
    },

    /// The operation is a batch's child or parent, which its batch counts: it cannot be retried
    /// on its own.
    #[error(
        "batch operation {id} belongs to a batch, which counts it, so it cannot be retried on \
         its own; enqueue a new batch for the work that failed"
    )]
    PartOfABatch {
        /// The operation.
        id: i64,
    },

    /// Two steps of a workflow have the same name.
    #[error("workflow step `{step}` is named twice; give each step a name of its own")]
    DuplicateStep {
        /// The name given twice.
        step: String,
    },

    /// A workflow step depends on a name that is no step of the workflow.
    #[error(
        "workflow step `{step}` depends on `{dependency}`, which is no step of this workflow; \
         add a step of that name, or fix the name"
    )]
    UnknownStep {
        /// The step that names it.
        step: String,
        /// The name that matches no step.
        dependency: String,
    },

    /// Workflow steps depend on one another in a circle, so none of them could ever start.
    #[error(
        "workflow steps depend on one another in a cycle ({}), so none of them could ever \
         start; remove one of these dependencies",
        cycle_text(.steps)
    )]
    DependencyCycle {
        /// The steps of one cycle, each depending on the next; the last depends on the first.
        steps: Vec<String>,
    },

    /// A workflow step was given both a delay and dependencies.
    #[error(
        "workflow step `{step}` has a delay and dependencies; a step with dependencies starts \
         when they finish, so leave out the delay (or give it to a step without dependencies)"
    )]
    DelayedStep {
        /// The step.
        step: String,
    },

    /// An action asked for the output of an operation its step does not depend on.
    #[error(
        "`{dependency}` is not a dependency of batch operation {id}; a workflow step reads the \
         outputs of the steps it was declared to run after (`Step::after`)"
    )]
    NotADependency {
        /// The operation whose action asked.
        id: i64,
        /// The id or step name it asked for.
        dependency: String,
    },

    /// The operation did not finish within the time [`BatchOperation::wait`](crate::BatchOperation::wait) was given.
    #[error(
        "batch operation {id} did not finish within {waited:?} (it is {status}); wait longer, \
         or look at it again later"
    )]
    WaitTimedOut {
        /// The operation waited for.
        id: i64,
        /// How long the wait lasted.
        waited: std::time::Duration,
        /// Its status when the wait gave up.
        status: Status,
    },

    /// A text value is longer than its column allows. The library refuses it instead of letting
    /// one backend truncate it and another reject it.
    #[error("{field} is {length} characters long, but at most {limit} are allowed; shorten it")]
    ValueTooLong {
        /// Which value (`operation type`, `context object type`, ...).
        field: &'static str,
        /// Its length in characters.
        length: usize,
        /// The column's limit in characters.
        limit: usize,
    },

    /// A table name given for generated SQL is not a plain identifier.
    #[error("`{name}` cannot be used as a table name here: {reason}")]
    InvalidIdentifier {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// One row is larger than a single statement may be on this server (MySQL/MariaDB
    /// `max_allowed_packet`). That row's statement was never sent, so the connection stays
    /// usable, and the chunks inserted before it were rolled back.
    #[error(
        "a row of about {bytes} bytes does not fit in one statement (limit {limit} bytes, 75% of \
         the server's max_allowed_packet); raise max_allowed_packet on the server"
    )]
    RowTooLarge {
        /// The row's estimated size on the wire.
        bytes: usize,
        /// The most one statement may carry.
        limit: usize,
    },

    /// `bulk_insert_tracked_or_fail` was called inside a transaction, where its failure record
    /// would be rolled back with the caller's work. Nothing was done.
    #[error(
        "bulk_insert_tracked_or_fail must run outside a transaction (its failure record must \
         survive the rollback); inside one, use bulk_insert_tracked and record the failure after \
         rolling back"
    )]
    InsideTransaction,

    /// No action group is registered under this name. Nothing was written.
    #[error(
        "no action group is registered as `{name}` (registered: {known:?}); add it to the registry"
    )]
    UnknownActionGroup {
        /// The name asked for.
        name: String,
        /// The names the registry has.
        known: Vec<String>,
    },

    /// An action group is not valid; `RegistryBuilder::build` says why.
    #[error("action group `{name}` is not valid: {reason}")]
    InvalidActionGroup {
        /// The group's name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A delay was given for a synchronous group, which runs now. Nothing was written.
    #[error(
        "action group `{name}` is synchronous and runs immediately; make it asynchronous to \
         delay it"
    )]
    DelayedSynchronousRun {
        /// The group's name.
        name: String,
    },

    /// A worker could not get a connection from its pool: the database did not accept a new
    /// connection, or every connection stayed in use for the pool's `connection_timeout`. The
    /// pool's own error (with the last connection error, if any) is the source.
    #[cfg(feature = "r2d2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "r2d2")))]
    #[error(
        "the worker could not get a database connection from its pool; check that the \
         database is reachable, and that other users of the pool leave it enough connections \
         (raise its max_size or connection_timeout)"
    )]
    Pool(#[source] diesel::r2d2::PoolError),

    /// A worker was started with more threads than its pool has connections for: it needs one
    /// per thread and one for its keeper, or they would wait for each other's connections until
    /// the pool's timeout. Nothing was started.
    #[error(
        "a worker with {threads} thread(s) needs {needed} connections (one per thread and one for \
         its keeper), but the pool holds at most {max_size}; raise the pool's max_size or start \
         fewer threads"
    )]
    PoolTooSmall {
        /// The worker threads asked for.
        threads: usize,
        /// The connections they need: `threads + 1`.
        needed: usize,
        /// The pool's `max_size`.
        max_size: usize,
    },

    /// An internal invariant of this crate did not hold: a bug in this crate, not something the
    /// caller did. The message says which; please report it.
    #[error("internal error in batchframework_diesel: {0}; this is a bug, please report it")]
    Internal(&'static str),

    /// The worker could not install its SIGINT/SIGTERM handlers.
    #[error("could not install the worker's signal handlers: {0}")]
    Signal(#[source] std::io::Error),

    /// A worker thread panicked outside an action (a bug in this crate; actions' panics are
    /// caught and recorded).
    #[error("a worker thread panicked")]
    WorkerPanicked,

    /// A worker's shutdown ended with results of operations it ran still unwritten: the
    /// database did not answer within the shutdown's timeout (and its grace for results). Those
    /// operations are still `running` under the worker; once their lease expires other workers
    /// run them again, or finish them "worker lost" when their attempts are spent.
    #[error(
        "the worker stopped with {results} result(s) unwritten: the database did not answer in \
         time; their operations run again after their lease"
    )]
    ResultsNotWritten {
        /// How many results were not written.
        results: usize,
    },

    /// A bulk insert failed, and recording that failure on the operation failed too.
    #[error("{error}; recording the failure on the batch operation also failed: {record_error}")]
    FailureNotRecorded {
        /// Why the insert failed.
        error: Box<Error>,
        /// Why the failure could not be recorded.
        record_error: Box<Error>,
    },

    /// Input or output data could not be serialized to JSON.
    #[error("could not serialize the {field} as JSON: {source}")]
    SerializeData {
        /// `input data` or `output data`.
        field: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// A stored JSON column could not be read as the requested type: it holds invalid JSON (written
    /// by hand or by another program), or JSON of another shape than the type asked for.
    #[error(
        "the {field} of batch operation {id} cannot be read as the requested type: {source}; \
         ask for `serde_json::Value` to inspect what is stored"
    )]
    InvalidJson {
        /// The operation's id.
        id: i64,
        /// `input data` or `output data`.
        field: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// The `batchframework_batchoperation` table is missing, or older than this version of the
    /// crate (a column is missing).
    #[error(
        "the batchframework tables are missing or out of date in this database ({source}); \
         run `batchframework_diesel::run_migrations(&mut conn)` first"
    )]
    NotMigrated {
        /// The database's own error.
        #[source]
        source: diesel::result::Error,
    },

    /// Applying the embedded migrations failed.
    #[error("applying the batchframework migrations failed: {0}")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// Any other error the database or Diesel reported.
    #[error(transparent)]
    Database(diesel::result::Error),
}

// `From<diesel::result::Error>` is implemented in `backend`, which knows how each database words
// a missing table (`Error::NotMigrated`): this module stays below the backend layer.

/// A cycle of steps as a sentence: "`a` waits for `b`, which waits for `a`".
fn cycle_text(steps: &[String]) -> String {
    let mut text = String::new();
    for (i, step) in steps.iter().chain(steps.first()).enumerate() {
        text.push_str(match i {
            0 => "",
            1 => " waits for ",
            _ => ", which waits for ",
        });
        text.push_str(&format!("`{step}`"));
    }
    text
}
