-- A handed-over run (its delivery acked early, its event kept with the run) whose worker is declared lost has its
-- event published again once the transaction that declared it lost has committed, never inside it: a transaction
-- must not wait for the broker. republished_at records that the publish was confirmed; a run declared lost and not
-- yet republished (the broker was down, the declaring worker died in between) is found by the next sweep of any
-- worker, through this index.
ALTER TABLE task_runs ADD COLUMN republished_at timestamptz;
-- Runs declared lost before this migration were republished inside the transaction that declared them lost.
UPDATE task_runs SET republished_at = finished_at WHERE state = 'lost' AND event IS NOT NULL;
CREATE INDEX task_runs_republish_due ON task_runs (finished_at) WHERE state = 'lost' AND event IS NOT NULL AND republished_at IS NULL;
