//! The Diesel schema of the `batchframework_batchoperation` table, of `batchframework_queue`,
//! the queues' settings, of `batchframework_batch`, the batches' counts, and of
//! `batchframework_step` and `batchframework_dependency`, the workflows' steps.
//!
//! Public so an application can write its own queries against the table with Diesel's DSL
//! (`batchframework_batchoperation::table.filter(...)`) next to the ones this crate offers.

diesel::table! {
    use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Varchar};
    use crate::backend::timestamp::UtcTimestamp;

    /// One row per batch or background operation.
    batchframework_batchoperation (id) {
        /// Identity primary key.
        id -> BigInt,
        /// When the operation was created (UTC, microseconds).
        created_datetime -> UtcTimestamp,
        /// When it started running; set for `running` and `finished` operations.
        started_running_datetime -> Nullable<UtcTimestamp>,
        /// When it finished; set for `finished` operations.
        finished_datetime -> Nullable<UtcTimestamp>,
        /// The context object's type key (by default its table name).
        context_object_type -> Nullable<Varchar>,
        /// The context object's primary key, as text.
        context_object_id -> Nullable<Varchar>,
        /// The application's key for the user who started the operation.
        started_by -> Nullable<Varchar>,
        /// What kind of operation this is; at most 255 characters.
        operationtype -> Varchar,
        /// `unprocessed`, `running` or `finished`.
        status -> Varchar,
        /// `not-available`, `successful` or `failed`.
        result -> Varchar,
        /// JSON input data; '' means none.
        input_data_json -> Text,
        /// JSON output data; '' means none.
        output_data_json -> Text,
        /// The worker queue it runs on (`default`, `highpriority`, ...).
        queue -> Varchar,
        /// Higher runs first within a queue.
        priority -> Integer,
        /// Not to be started before this instant, if set.
        run_after -> Nullable<UtcTimestamp>,
        /// How many times a worker has started it.
        attempts -> Integer,
        /// How many starts it may have before it is failed for good.
        max_attempts -> Integer,
        /// The worker holding it while it runs.
        locked_by -> Nullable<Varchar>,
        /// The holder's last sign of life.
        heartbeat_datetime -> Nullable<UtcTimestamp>,
        /// Progress reported by the running action: done so far ...
        progress_done -> Nullable<BigInt>,
        /// ... out of this many.
        progress_total -> Nullable<BigInt>,
        /// Someone asked the running operation to stop.
        cancel_requested -> Bool,
        /// The batch this operation is a child of (see [`crate::batch`]), if any.
        parent_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Varchar};
    use crate::backend::timestamp::UtcTimestamp;

    /// One row per queue that was paused or is served by a worker: its settings.
    batchframework_queue (queue) {
        /// The queue's name, as in `batchframework_batchoperation.queue`.
        queue -> Varchar,
        /// Workers claim nothing from a paused queue (what runs finishes).
        paused -> Bool,
        /// When the row was created or last changed (UTC, microseconds).
        changed_datetime -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Bool, Text};

    /// One row per batch (see [`crate::batch`]): its parent operation's id and its children's
    /// counts.
    batchframework_batch (operation_id) {
        /// The parent operation.
        operation_id -> BigInt,
        /// How many children the batch was created with.
        total -> BigInt,
        /// Children finished `successful`.
        succeeded -> BigInt,
        /// Children finished `failed` (for good: a child being retried is still pending).
        failed -> BigInt,
        /// The callbacks enqueued when the batch completes, as JSON; '' for none.
        callbacks_json -> Text,
        /// Whether the batch is a workflow, whose children may depend on one another.
        workflow -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Bool, Integer, Varchar};

    /// One row per step of a workflow (see [`crate::workflow`]).
    batchframework_step (operation_id) {
        /// The step's operation, a child of the workflow's parent.
        operation_id -> BigInt,
        /// The step's name, unique in its workflow.
        name -> Varchar,
        /// How many of its dependencies have yet to finish; it is released at zero.
        waiting_for -> Integer,
        /// How many of its dependencies finished `failed`.
        failed_dependencies -> Integer,
        /// Whether it runs when a dependency failed (otherwise it is cancelled).
        run_if_dependencies_fail -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::BigInt;

    /// One row per dependency between two steps of a workflow.
    batchframework_dependency (depends_on_id, operation_id) {
        /// The step that must finish first.
        depends_on_id -> BigInt,
        /// The step that waits for it.
        operation_id -> BigInt,
    }
}

diesel::joinable!(batchframework_batch -> batchframework_batchoperation (operation_id));
diesel::joinable!(batchframework_step -> batchframework_batchoperation (operation_id));
diesel::allow_tables_to_appear_in_same_query!(
    batchframework_batch,
    batchframework_batchoperation,
    batchframework_step,
    batchframework_dependency
);
