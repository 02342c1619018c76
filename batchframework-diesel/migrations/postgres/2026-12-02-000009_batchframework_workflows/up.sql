-- Workflows: a batch whose children (its steps) may depend on one another.
--
-- A step that waits for its dependencies is an ordinary pending child whose `run_after` is
-- 9999-12-31: the claim's range of due delayed work never reaches it, so any number of waiting
-- steps costs claims nothing. The transaction that finishes its last dependency sets
-- `run_after` back to NULL (or finishes the step `failed`, cancelled, when a dependency failed).
ALTER TABLE batchframework_batch ADD COLUMN workflow BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per step: its name in the workflow, and how many of its dependencies have yet to
-- finish. Finishing a dependency decrements the count by a row-locking UPDATE, so of two
-- transactions finishing a step's last two dependencies together, exactly one sees it reach
-- zero and releases the step.
CREATE TABLE batchframework_step (
    operation_id BIGINT NOT NULL PRIMARY KEY
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    waiting_for INTEGER NOT NULL CHECK (waiting_for >= 0),
    failed_dependencies INTEGER NOT NULL DEFAULT 0,
    -- Whether the step runs when a dependency failed (by default it is cancelled).
    run_if_dependencies_fail BOOLEAN NOT NULL DEFAULT FALSE
);

-- One row per dependency: `operation_id` runs after `depends_on_id` finished. The primary key
-- finds a finished step's dependents; the second index, a step's own dependencies.
CREATE TABLE batchframework_dependency (
    depends_on_id BIGINT NOT NULL
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE,
    operation_id BIGINT NOT NULL
        REFERENCES batchframework_batchoperation (id) ON DELETE CASCADE,
    PRIMARY KEY (depends_on_id, operation_id)
);
CREATE INDEX batchframework_dependency_operation_idx
    ON batchframework_dependency (operation_id);

-- A released step wakes the workers as released work does: the trigger now also fires when a
-- pending operation's `run_after` changes to now or earlier.
DROP TRIGGER batchframework_notify_released_work ON batchframework_batchoperation;
CREATE TRIGGER batchframework_notify_released_work
    AFTER UPDATE OF status, run_after ON batchframework_batchoperation
    FOR EACH ROW
    WHEN (NEW.status = 'unprocessed'
          AND (OLD.status <> 'unprocessed' OR OLD.run_after IS DISTINCT FROM NEW.run_after)
          AND (NEW.run_after IS NULL OR NEW.run_after <= now() + interval '1 second'))
    EXECUTE FUNCTION batchframework_notify_released_work();
