-- Batches: a parent operation whose children are ordinary operations pointing at it.
--
-- `parent_id` has no foreign key: checking one per child would cost a lookup of the parent for
-- every row of a bulk enqueue, and pruning a finished parent must leave the rows that point at
-- it alone (as `batchoperation_id` on an application's table does). The index is on the parent
-- alone: InnoDB rewrites a secondary index entry only when its columns change, and a child's
-- parent never does, so claims and finishes leave it untouched. Cancelling a batch and its
-- completion summary read the batch's children from it.
ALTER TABLE batchframework_batchoperation
    ADD COLUMN parent_id BIGINT NULL,
    ADD INDEX batchframework_batchoperation_parent_idx (parent_id);

-- One row per batch, beside its parent operation: how many children it has and how many have
-- finished each way, counted in the transaction that finishes the children; the one that
-- brings them to `total` finishes the parent and enqueues the callbacks.
CREATE TABLE batchframework_batch (
    operation_id BIGINT NOT NULL PRIMARY KEY,
    total BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    -- The callbacks to enqueue when the batch completes, as JSON ('' for none).
    callbacks_json LONGTEXT NOT NULL DEFAULT (''),
    CONSTRAINT batchframework_batch_total_positive CHECK (total >= 0),
    CONSTRAINT batchframework_batch_operation_fk FOREIGN KEY (operation_id)
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
