-- An operator may cancel a task waiting for its retry: the failed attempt is marked, and the retry, when it comes
-- back from its delay queue, counts as completed (acked without running).
ALTER TABLE task_runs ADD COLUMN retry_cancelled boolean NOT NULL DEFAULT false;
