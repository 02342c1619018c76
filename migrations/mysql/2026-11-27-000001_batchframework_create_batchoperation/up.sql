-- The batch operation table. The CHECK constraints hold the lifecycle's invariants, so even raw
-- SQL cannot store an operation in an impossible state (enforced by MySQL 8.0.16+ and MariaDB
-- 10.2+). DATETIME(6) holds UTC with microseconds and is never shifted by the session time_zone.
-- utf8mb4_bin compares text exactly, as PostgreSQL and SQLite do, so a query by operation type or
-- context object finds the same rows on every backend.
CREATE TABLE batchframework_batchoperation (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_datetime DATETIME(6) NOT NULL,
    started_running_datetime DATETIME(6) NULL,
    finished_datetime DATETIME(6) NULL,
    context_object_type VARCHAR(255) NULL,
    context_object_id VARCHAR(255) NULL,
    started_by VARCHAR(255) NULL,
    operationtype VARCHAR(255) NOT NULL,
    status VARCHAR(12) NOT NULL DEFAULT 'unprocessed',
    result VARCHAR(13) NOT NULL DEFAULT 'not-available',
    input_data_json LONGTEXT NOT NULL DEFAULT (''),
    output_data_json LONGTEXT NOT NULL DEFAULT (''),
    CONSTRAINT batchframework_batchoperation_status_known
        CHECK (status IN ('unprocessed', 'running', 'finished')),
    CONSTRAINT batchframework_batchoperation_result_known
        CHECK (result IN ('not-available', 'successful', 'failed')),
    CONSTRAINT batchframework_batchoperation_result_iff_finished
        CHECK ((status = 'finished') = (result IN ('successful', 'failed'))),
    CONSTRAINT batchframework_batchoperation_started_has_start_time
        CHECK (status = 'unprocessed' OR started_running_datetime IS NOT NULL),
    CONSTRAINT batchframework_batchoperation_finished_has_finish_time
        CHECK (status <> 'finished' OR finished_datetime IS NOT NULL),
    INDEX batchframework_batchoperation_operationtype_idx (operationtype),
    INDEX batchframework_batchoperation_context_object_idx (context_object_type, context_object_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
