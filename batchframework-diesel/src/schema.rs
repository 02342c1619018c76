//! The Diesel schema of the `batchframework_batchoperation` table, of `batchframework_queue`,
//! the queues' settings, and of `batchframework_batch`, the batches' counts.
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
    use diesel::sql_types::{BigInt, Text};

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
    }
}

diesel::joinable!(batchframework_batch -> batchframework_batchoperation (operation_id));
diesel::allow_tables_to_appear_in_same_query!(batchframework_batch, batchframework_batchoperation);
