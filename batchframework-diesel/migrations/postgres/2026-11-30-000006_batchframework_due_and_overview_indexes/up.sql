-- Indexes that hold only what each question needs, so that neither a backlog of delayed work
-- nor years of finished history slows the workers or the operators' queries.

-- Immediate work (no run_after) of each type, in claim order. A claim reads each type of its
-- registry from here and from the next index, and takes the first by priority then age.
CREATE INDEX batchframework_batchoperation_due_now_idx
    ON batchframework_batchoperation (operationtype, priority DESC, id)
    WHERE status = 'unprocessed' AND run_after IS NULL;

-- Delayed work and retries in backoff of each type, soonest first: a claim reads only the rows
-- already due, however many are waiting for later.
CREATE INDEX batchframework_batchoperation_due_later_idx
    ON batchframework_batchoperation (operationtype, run_after, id)
    WHERE status = 'unprocessed' AND run_after IS NOT NULL;

-- Active operations by status and queue: the queues that have some (one seek each), counts
-- of a queue's due, delayed and running operations (one range each, read no further than the
-- count's limit), and the oldest due operation of a queue (by id among immediate work, by
-- run_after among delayed work).
CREATE INDEX batchframework_batchoperation_active_idx
    ON batchframework_batchoperation (status, queue, run_after, id)
    WHERE status = 'unprocessed' OR status = 'running';

-- Finished operations by queue, result and finish time: the queues that ever finished work
-- (one seek each), and a queue's successes and failures in the last hour or day, newest first,
-- read no further than the count's limit.
CREATE INDEX batchframework_batchoperation_finished_idx
    ON batchframework_batchoperation (queue, result, finished_datetime)
    WHERE status = 'finished';

-- Failures by finish time: failures in a time window, without reading the successes.
CREATE INDEX batchframework_batchoperation_failed_idx
    ON batchframework_batchoperation (finished_datetime)
    WHERE result = 'failed';

-- History by creation time: a time window, and keyset pages in creation order.
CREATE INDEX batchframework_batchoperation_created_idx
    ON batchframework_batchoperation (created_datetime, id);

-- Replaced by the two due indexes: it held delayed work too, which every claim stepped over.
DROP INDEX batchframework_batchoperation_pending_type_idx;
