-- Batches: a parent operation whose children are ordinary operations pointing at it.
--
-- `parent_id` has no foreign key: pruning a finished parent must leave the rows that point at
-- it alone (as `batchoperation_id` on an application's table does). The index holds children
-- only: a batch's pending children (cancel) and its failed ones (the completion summary) are
-- each one range.
ALTER TABLE batchframework_batchoperation ADD COLUMN parent_id BIGINT NULL;

CREATE INDEX batchframework_batchoperation_parent_idx
    ON batchframework_batchoperation (parent_id, status, result)
    WHERE parent_id IS NOT NULL;

-- One row per batch, beside its parent operation: how many children it has and how many have
-- finished each way, counted in the transaction that finishes the children; the one that
-- brings them to `total` finishes the parent and enqueues the callbacks.
CREATE TABLE batchframework_batch (
    operation_id INTEGER NOT NULL PRIMARY KEY
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE,
    total BIGINT NOT NULL CHECK (total >= 0),
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    -- The callbacks to enqueue when the batch completes, as JSON ('' for none).
    callbacks_json TEXT NOT NULL DEFAULT ''
);
