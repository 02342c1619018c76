-- The batch operation table. The CHECK constraints hold the lifecycle's invariants, so even raw
-- SQL cannot store an operation in an impossible state. AUTOINCREMENT keeps SQLite from reusing
-- the id of a deleted operation, so rows tagged with an old id never join a new operation.
-- Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
CREATE TABLE batchframework_batchoperation (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    created_datetime TEXT NOT NULL,
    started_running_datetime TEXT NULL,
    finished_datetime TEXT NULL,
    context_object_type VARCHAR(255) NULL CHECK (length(context_object_type) <= 255),
    context_object_id VARCHAR(255) NULL CHECK (length(context_object_id) <= 255),
    started_by VARCHAR(255) NULL CHECK (length(started_by) <= 255),
    operationtype VARCHAR(255) NOT NULL CHECK (length(operationtype) <= 255),
    status VARCHAR(12) NOT NULL DEFAULT 'unprocessed',
    result VARCHAR(13) NOT NULL DEFAULT 'not-available',
    input_data_json TEXT NOT NULL DEFAULT '',
    output_data_json TEXT NOT NULL DEFAULT '',
    CONSTRAINT batchframework_batchoperation_status_known
        CHECK (status IN ('unprocessed', 'running', 'finished')),
    CONSTRAINT batchframework_batchoperation_result_known
        CHECK (result IN ('not-available', 'successful', 'failed')),
    CONSTRAINT batchframework_batchoperation_result_iff_finished
        CHECK ((status = 'finished') = (result IN ('successful', 'failed'))),
    CONSTRAINT batchframework_batchoperation_started_has_start_time
        CHECK (status = 'unprocessed' OR started_running_datetime IS NOT NULL),
    CONSTRAINT batchframework_batchoperation_finished_has_finish_time
        CHECK (status <> 'finished' OR finished_datetime IS NOT NULL)
);

CREATE INDEX batchframework_batchoperation_operationtype_idx
    ON batchframework_batchoperation (operationtype);
CREATE INDEX batchframework_batchoperation_context_object_idx
    ON batchframework_batchoperation (context_object_type, context_object_id);
