-- Batches: a parent operation whose children are ordinary operations pointing at it.
--
-- `parent_id` has no foreign key: checking one per child would cost a lookup of the parent for
-- every row of a bulk enqueue, and pruning a finished parent must leave the rows that point at
-- it alone (as `batchoperation_id` on an application's table does).
--
-- Two partial indexes, each holding only what one question needs. Every claim and finish
-- writes a new entry into each index whose predicate the row meets (status is indexed, so no
-- update is HOT): an index of every child would cost each child an entry at its claim and
-- another at its finish. These hold a batch's unfinished children (cancelling a batch) and its
-- failed ones (the completion summary), so a child that succeeds costs one entry, at its claim.
ALTER TABLE batchframework_batchoperation ADD COLUMN parent_id BIGINT NULL;

CREATE INDEX batchframework_batchoperation_unfinished_children_idx
    ON batchframework_batchoperation (parent_id)
    WHERE parent_id IS NOT NULL AND status <> 'finished';

CREATE INDEX batchframework_batchoperation_failed_children_idx
    ON batchframework_batchoperation (parent_id, id)
    WHERE parent_id IS NOT NULL AND result = 'failed';

-- One row per batch, beside its parent operation: how many children it has and how many have
-- finished each way. Workers' group commits add to the counts, once per batch per group, in
-- the transaction that finishes the children, so the counts and the children never disagree;
-- the transaction that brings them to `total` finishes the parent and enqueues the callbacks.
-- The counters live here rather than on the parent's row so that updating them rewrites a
-- narrow row with no secondary index.
CREATE TABLE batchframework_batch (
    operation_id BIGINT NOT NULL PRIMARY KEY
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE,
    total BIGINT NOT NULL CHECK (total >= 0),
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    -- The callbacks to enqueue when the batch completes, as JSON ('' for none).
    callbacks_json TEXT NOT NULL DEFAULT ''
);
