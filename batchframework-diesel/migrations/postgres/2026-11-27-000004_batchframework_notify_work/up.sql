-- Workers LISTEN on the channel `batchframework_work`; these triggers NOTIFY it, with the queue's
-- name as payload, when work becomes due, so an idle worker starts it within milliseconds instead
-- of at its next poll. PostgreSQL delivers a notification only when the transaction commits, so
-- the woken worker finds the row.

-- Inserted work: once per statement and queue, so a bulk COPY of 100,000 operations sends one
-- notification, not 100,000. Delayed operations are left to polling. `run_after` comes from the
-- application's clock: a second of slack keeps a small skew from silencing work due now (a
-- worker woken a little early finds nothing due and goes back to waiting).
CREATE FUNCTION batchframework_notify_inserted_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('batchframework_work', due.queue)
    FROM (
        SELECT DISTINCT queue FROM inserted
        WHERE status = 'unprocessed'
          AND (run_after IS NULL OR run_after <= now() + interval '1 second')
    ) AS due;
    RETURN NULL;
END
$$;

CREATE TRIGGER batchframework_notify_inserted_work
    AFTER INSERT ON batchframework_batchoperation
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION batchframework_notify_inserted_work();

-- Released work (a retry without backoff, an operation a stopping worker gave back): the WHEN
-- clause keeps the function off every other update's path.
CREATE FUNCTION batchframework_notify_released_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('batchframework_work', NEW.queue);
    RETURN NULL;
END
$$;

CREATE TRIGGER batchframework_notify_released_work
    AFTER UPDATE OF status ON batchframework_batchoperation
    FOR EACH ROW
    WHEN (NEW.status = 'unprocessed' AND OLD.status <> 'unprocessed'
          AND (NEW.run_after IS NULL OR NEW.run_after <= now() + interval '1 second'))
    EXECUTE FUNCTION batchframework_notify_released_work();
