CREATE INDEX batchframework_batchoperation_claim_idx
    ON batchframework_batchoperation (queue, priority DESC, id)
    WHERE status = 'unprocessed';
CREATE INDEX batchframework_batchoperation_pending_idx
    ON batchframework_batchoperation (priority DESC, id)
    WHERE status = 'unprocessed';
DROP INDEX batchframework_batchoperation_pending_type_idx;
