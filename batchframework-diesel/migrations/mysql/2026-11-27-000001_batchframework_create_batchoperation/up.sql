-- The batch operation table. The CHECK constraints hold the lifecycle's invariants, so even raw
-- SQL cannot store an operation in an impossible state (enforced by MySQL 8.0.16+ and MariaDB
-- 10.2+). DATETIME(6) holds UTC with microseconds and is never shifted by the session time_zone.
-- The key columns are VARBINARY holding UTF-8: binary strings compare byte for byte, as PostgreSQL
-- and SQLite compare text, so a query by operation type or context object finds the same rows on
-- every backend. (Every utf8mb4 collation MariaDB and MySQL share ignores trailing spaces, so
-- 'email' would match 'email ' and removing the pending work of object '7' would remove that of
-- '7 '.) The CHECKs keep the 255-character limit of the other backends.
CREATE TABLE batchframework_batchoperation (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_datetime DATETIME(6) NOT NULL,
    started_running_datetime DATETIME(6) NULL,
    finished_datetime DATETIME(6) NULL,
    context_object_type VARBINARY(1020) NULL,
    context_object_id VARBINARY(1020) NULL,
    started_by VARBINARY(1020) NULL,
    operationtype VARBINARY(1020) NOT NULL,
    status VARCHAR(12) NOT NULL DEFAULT 'unprocessed',
    result VARCHAR(13) NOT NULL DEFAULT 'not-available',
    input_data_json LONGTEXT NOT NULL DEFAULT (''),
    output_data_json LONGTEXT NOT NULL DEFAULT (''),
    CONSTRAINT batchframework_batchoperation_keys_fit CHECK (
        CHAR_LENGTH(CONVERT(operationtype USING utf8mb4)) <= 255
        AND (context_object_type IS NULL OR CHAR_LENGTH(CONVERT(context_object_type USING utf8mb4)) <= 255)
        AND (context_object_id IS NULL OR CHAR_LENGTH(CONVERT(context_object_id USING utf8mb4)) <= 255)
        AND (started_by IS NULL OR CHAR_LENGTH(CONVERT(started_by USING utf8mb4)) <= 255)),
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
