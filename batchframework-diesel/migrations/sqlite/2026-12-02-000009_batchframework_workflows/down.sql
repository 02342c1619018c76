DROP TABLE batchframework_dependency;
DROP TABLE batchframework_step;
ALTER TABLE batchframework_batch DROP COLUMN workflow;
