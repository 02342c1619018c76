DROP TABLE batchframework_batch;
ALTER TABLE batchframework_batchoperation
    DROP INDEX batchframework_batchoperation_parent_idx,
    DROP COLUMN parent_id;
