-- Batches: a parent operation whose children are ordinary operations pointing at it.
--
-- `parent_id` has no foreign key: pruning a finished parent must leave the rows that point at
-- it alone (as `batchoperation_id` on an application's table does). Two partial indexes, as on
-- PostgreSQL: a batch's unfinished children (cancelling a batch) and its failed ones (the
-- completion summary). The statements repeat their WHERE terms word for word, which SQLite
-- needs to use them.
ALTER TABLE batchframework_batchoperation ADD COLUMN parent_id BIGINT NULL;

CREATE INDEX batchframework_batchoperation_unfinished_children_idx
    ON batchframework_batchoperation (parent_id)
    WHERE parent_id IS NOT NULL AND status <> 'finished';

CREATE INDEX batchframework_batchoperation_failed_children_idx
    ON batchframework_batchoperation (parent_id, id)
    WHERE parent_id IS NOT NULL AND result = 'failed';

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
