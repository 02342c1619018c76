-- One row per queue that an operator paused (or a worker serves): a paused queue is not
-- claimed from; what is running finishes. Workers lock their queues' rows in share mode while
-- they claim, so a pause waits for the claims in flight and none starts after it returns.
CREATE TABLE batchframework_queue (
    queue VARCHAR(255) NOT NULL PRIMARY KEY,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    changed_datetime TIMESTAMPTZ NOT NULL
);
