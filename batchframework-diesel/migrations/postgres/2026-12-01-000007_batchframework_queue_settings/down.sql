DROP TABLE batchframework_queue;
