-- One row per queue that an operator paused (or a worker serves): a paused queue is not
-- claimed from; what is running finishes. SQLite serialises writers, so a pause waits for the
-- claim in flight and none starts after it returns. Timestamps as in the operation table.
CREATE TABLE batchframework_queue (
    queue VARCHAR(255) NOT NULL PRIMARY KEY CHECK (length(queue) <= 255),
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    changed_datetime TEXT NOT NULL
);
