-- One row per queue that an operator paused (or a worker serves): a paused queue is not
-- claimed from; what is running finishes. Workers lock their queues' rows in share mode while
-- they claim, so a pause waits for the claims in flight and none starts after it returns.
-- The queue is VARBINARY holding UTF-8, compared byte for byte as in the operation table.
CREATE TABLE batchframework_queue (
    queue VARBINARY(1020) NOT NULL PRIMARY KEY,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    changed_datetime DATETIME(6) NOT NULL,
    CONSTRAINT batchframework_queue_queue_fits
        CHECK (CHAR_LENGTH(CONVERT(queue USING utf8mb4)) <= 255)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
