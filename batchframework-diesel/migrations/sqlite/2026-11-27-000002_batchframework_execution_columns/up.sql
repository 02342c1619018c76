-- Columns the action registry and its workers use: where and when an operation runs, how often
-- it may be tried, who holds it, and how far it got. (SQLite adds one column per statement and
-- takes CHECKs only inline.)
ALTER TABLE batchframework_batchoperation ADD COLUMN queue VARCHAR(255) NOT NULL DEFAULT 'default' CHECK (length(queue) <= 255);
ALTER TABLE batchframework_batchoperation ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batchframework_batchoperation ADD COLUMN run_after TEXT NULL;
ALTER TABLE batchframework_batchoperation ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0);
ALTER TABLE batchframework_batchoperation ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1 CHECK (max_attempts >= 1);
ALTER TABLE batchframework_batchoperation ADD COLUMN locked_by VARCHAR(255) NULL;
ALTER TABLE batchframework_batchoperation ADD COLUMN heartbeat_datetime TEXT NULL;
ALTER TABLE batchframework_batchoperation ADD COLUMN progress_done BIGINT NULL;
ALTER TABLE batchframework_batchoperation ADD COLUMN progress_total BIGINT NULL;
ALTER TABLE batchframework_batchoperation ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;

-- The claim query: pending work of a queue, by priority then age.
CREATE INDEX batchframework_batchoperation_claim_idx
    ON batchframework_batchoperation (queue, priority DESC, id)
    WHERE status = 'unprocessed';
