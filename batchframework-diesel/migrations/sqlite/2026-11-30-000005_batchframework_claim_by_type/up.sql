-- Workers claim only the operation types their registry has (other services, or a newer
-- release, may share the queue), reading the pending work of each type from this index, in
-- claim order. A backlog of types a worker does not know, queued ahead of its own, then costs
-- its claims nothing (with one index across types, each claim stepped over the whole backlog:
-- 45 ms behind 100,000 operations on PostgreSQL).
CREATE INDEX batchframework_batchoperation_pending_type_idx
    ON batchframework_batchoperation (operationtype, priority DESC, id)
    WHERE status = 'unprocessed';

-- The pending indexes by queue and across queues served the claim before; they are dropped so
-- that the planner, misled by statistics that count a type's finished rows as if they were
-- pending, cannot pick them and filter its way through another type's backlog.
DROP INDEX batchframework_batchoperation_pending_idx;
DROP INDEX batchframework_batchoperation_claim_idx;
