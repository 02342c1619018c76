-- Columns the action registry and its workers use: where and when an operation runs, how often
-- it may be tried, who holds it, and how far it got. queue and locked_by are VARBINARY for exact
-- matching, like the other key columns.
ALTER TABLE batchframework_batchoperation
    ADD COLUMN queue VARBINARY(1020) NOT NULL DEFAULT 'default',
    ADD COLUMN priority INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN run_after DATETIME(6) NULL,
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN locked_by VARBINARY(1020) NULL,
    ADD COLUMN heartbeat_datetime DATETIME(6) NULL,
    ADD COLUMN progress_done BIGINT NULL,
    ADD COLUMN progress_total BIGINT NULL,
    ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    ADD CONSTRAINT batchframework_batchoperation_attempts_valid
        CHECK (attempts >= 0 AND max_attempts >= 1),
    ADD CONSTRAINT batchframework_batchoperation_queue_fits
        CHECK (CHAR_LENGTH(CONVERT(queue USING utf8mb4)) <= 255),
    -- The claim query: pending work of a queue, by priority then age (no partial indexes here).
    ADD INDEX batchframework_batchoperation_claim_idx (status, queue, priority, id);
