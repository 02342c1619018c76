-- Indexes for the claim's two reads, so a claim costs the same with a million finished
-- operations in the table as with none. MySQL has no partial indexes: status leads each key.

-- Pending work by priority then age, across all of a worker's queues (a worker serves every
-- queue of its registry by default); the claim index, rebuilt with the claim's mixed order,
-- serves workers of a single queue. (MariaDB before 10.8 ignores DESC and sorts instead.)
ALTER TABLE batchframework_batchoperation
    DROP INDEX batchframework_batchoperation_claim_idx,
    ADD INDEX batchframework_batchoperation_claim_idx (status, queue, priority DESC, id),
    ADD INDEX batchframework_batchoperation_pending_idx (status, priority DESC, id),
    ADD INDEX batchframework_batchoperation_running_idx (status, heartbeat_datetime);
