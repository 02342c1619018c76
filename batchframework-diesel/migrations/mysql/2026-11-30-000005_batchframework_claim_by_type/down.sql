ALTER TABLE batchframework_batchoperation
    ADD INDEX batchframework_batchoperation_claim_idx (status, queue, priority DESC, id),
    ADD INDEX batchframework_batchoperation_pending_idx (status, priority DESC, id),
    DROP INDEX batchframework_batchoperation_pending_type_idx;
