ALTER TABLE batchframework_batchoperation
    ADD INDEX batchframework_batchoperation_pending_type_idx (status, operationtype, priority DESC, id),
    DROP INDEX batchframework_batchoperation_created_idx,
    DROP INDEX batchframework_batchoperation_failed_idx,
    DROP INDEX batchframework_batchoperation_finished_idx,
    DROP INDEX batchframework_batchoperation_active_idx,
    DROP INDEX batchframework_batchoperation_due_idx;
