-- Indexes that hold only what each question needs, so that neither a backlog of delayed work
-- nor years of finished history slows the workers or the operators' queries. MySQL and MariaDB
-- have no partial indexes: status (or result) leads each key, so that finished history sits in
-- a range of its own that the reads of active work never enter.

-- Pending work of each type: immediate work (run_after NULL) in claim order, priority then id,
-- under the equality `run_after IS NULL`; delayed work and retries in backoff, soonest first,
-- as the range `run_after <= now` after it, which holds only the rows already due.
ALTER TABLE batchframework_batchoperation
    ADD INDEX batchframework_batchoperation_due_idx (status, operationtype, run_after, priority DESC, id),
    -- Active operations by status and queue: the queues that have some (one seek each), counts
    -- of a queue's due, delayed and running operations (one range each, read no further than
    -- the count's limit), and the oldest due operation of a queue (InnoDB appends the primary
    -- key, id, to every secondary key).
    ADD INDEX batchframework_batchoperation_active_idx (status, queue, run_after),
    -- Finished operations by queue, result and finish time: the queues that ever finished
    -- work (one seek each), and a queue's successes and failures in the last hour or day,
    -- newest first, read no further than the count's limit.
    ADD INDEX batchframework_batchoperation_finished_idx (status, queue, result, finished_datetime),
    -- Failures by finish time: failures in a time window, without reading the successes.
    ADD INDEX batchframework_batchoperation_failed_idx (result, finished_datetime),
    -- History by creation time: a time window, and keyset pages in creation order.
    ADD INDEX batchframework_batchoperation_created_idx (created_datetime),
    -- Replaced by the due index: it held delayed work too, which every claim stepped over.
    DROP INDEX batchframework_batchoperation_pending_type_idx;
