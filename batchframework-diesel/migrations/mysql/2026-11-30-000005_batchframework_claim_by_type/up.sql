-- Workers claim only the operation types their registry has (other services, or a newer
-- release, may share the queue), reading the pending work of each type from this index, in
-- claim order. A backlog of types a worker does not know, queued ahead of its own, then costs
-- its claims nothing. MySQL has no partial indexes: status leads the key. The pending indexes by
-- queue and across queues, which served the claim before, are dropped so that the optimizer
-- cannot pick them and filter its way through another type's backlog.
ALTER TABLE batchframework_batchoperation
    ADD INDEX batchframework_batchoperation_pending_type_idx (status, operationtype, priority DESC, id),
    DROP INDEX batchframework_batchoperation_pending_idx,
    DROP INDEX batchframework_batchoperation_claim_idx;
