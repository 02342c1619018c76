ALTER TABLE batchframework_batchoperation
    DROP INDEX batchframework_batchoperation_running_idx,
    DROP INDEX batchframework_batchoperation_pending_idx,
    DROP INDEX batchframework_batchoperation_claim_idx,
    ADD INDEX batchframework_batchoperation_claim_idx (status, queue, priority, id);
