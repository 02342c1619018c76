DROP TRIGGER batchframework_notify_released_work ON batchframework_batchoperation;
CREATE TRIGGER batchframework_notify_released_work
    AFTER UPDATE OF status ON batchframework_batchoperation
    FOR EACH ROW
    WHEN (NEW.status = 'unprocessed' AND OLD.status <> 'unprocessed'
          AND (NEW.run_after IS NULL OR NEW.run_after <= now() + interval '1 second'))
    EXECUTE FUNCTION batchframework_notify_released_work();
DROP TABLE batchframework_dependency;
DROP TABLE batchframework_step;
ALTER TABLE batchframework_batch DROP COLUMN workflow;
