CREATE INDEX batchframework_batchoperation_pending_type_idx
    ON batchframework_batchoperation (operationtype, priority DESC, id)
    WHERE status = 'unprocessed';
DROP INDEX batchframework_batchoperation_created_idx;
DROP INDEX batchframework_batchoperation_failed_idx;
DROP INDEX batchframework_batchoperation_finished_idx;
DROP INDEX batchframework_batchoperation_active_idx;
DROP INDEX batchframework_batchoperation_due_later_idx;
DROP INDEX batchframework_batchoperation_due_now_idx;
