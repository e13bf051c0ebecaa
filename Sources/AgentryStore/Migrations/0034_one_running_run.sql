-- One running run per agent and event. Two deliveries of one event (a publisher that sent it twice, a redelivery) that
-- two workers claimed at the same instant each passed the claim's look for a run of it elsewhere, neither able to see
-- the other's uncommitted claim, and both ran the handler at once. With this index the second claim's insert waits
-- for the first to commit and then does nothing: that claim takes no slot, tries again, finds the run, and waits for
-- its outcome (`runningElsewhere`), then settles its delivery (`alreadyCompleted`).
--
-- It replaces idx_task_runs_running (agent_id) for the queries by agent, which its first column serves.

-- Should two runs be running already, the older is recorded lost (its worker's outcome, if it comes, still lands).
UPDATE task_runs r SET state = 'lost', finished_at = coalesce(r.finished_at, now()),
       message = 'another run of this event for this agent was running too (migration 0034 keeps one)'
WHERE r.state = 'running' AND EXISTS (
    SELECT 1 FROM task_runs o
    WHERE o.agent_id = r.agent_id AND o.event_id = r.event_id AND o.state = 'running'
      AND (o.started_at, o.run_id) > (r.started_at, r.run_id));

DROP INDEX IF EXISTS idx_task_runs_running;
CREATE UNIQUE INDEX task_runs_one_running ON task_runs (agent_id, event_id) WHERE state = 'running';
