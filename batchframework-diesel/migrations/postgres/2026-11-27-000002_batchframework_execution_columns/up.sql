-- Columns the action registry and its workers use: where and when an operation runs, how often
-- it may be tried, who holds it, and how far it got.
ALTER TABLE batchframework_batchoperation
    ADD COLUMN queue VARCHAR(255) NOT NULL DEFAULT 'default',
    ADD COLUMN priority INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN run_after TIMESTAMPTZ NULL,
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN locked_by VARCHAR(255) NULL,
    ADD COLUMN heartbeat_datetime TIMESTAMPTZ NULL,
    ADD COLUMN progress_done BIGINT NULL,
    ADD COLUMN progress_total BIGINT NULL,
    ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    ADD CONSTRAINT batchframework_batchoperation_attempts_valid
        CHECK (attempts >= 0 AND max_attempts >= 1);

-- The claim query: pending work of a queue, by priority then age.
CREATE INDEX batchframework_batchoperation_claim_idx
    ON batchframework_batchoperation (queue, priority DESC, id)
    WHERE status = 'unprocessed';
