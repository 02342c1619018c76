-- Indexes for the claim's two reads, so a claim costs the same with a million finished
-- operations in the table as with none (without them it scanned and sorted the table).

-- Pending work by priority then age, across all of a worker's queues (a worker serves every
-- queue of its registry by default). The claim index of the previous migration serves workers
-- of a single queue.
CREATE INDEX batchframework_batchoperation_pending_idx
    ON batchframework_batchoperation (priority DESC, id)
    WHERE status = 'unprocessed';

-- Running operations by heartbeat: those of a lost worker.
CREATE INDEX batchframework_batchoperation_running_idx
    ON batchframework_batchoperation (heartbeat_datetime)
    WHERE status = 'running';
