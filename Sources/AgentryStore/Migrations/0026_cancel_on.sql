-- Cancel on event: an agent's `cancel_on` names events that make its work for something moot (`alert.resolved`
-- cancels the runs of `alert.blackscreen` for the same device). A run of such an agent keeps the values its event has
-- at the paths `cancel_on` compares (cancel_values, {"payload.device_id": "tv-1"}), written right after its claim and
-- only for those agents. A cancelling event leaves a mark, which cancels the agent's matching runs whose events are
-- not newer than it: those waiting or running now (cancelled at once) and those still in the queue (cancelled when
-- they are delivered, which each run checks after its claim). Marks are kept a bounded time (see the worker).
ALTER TABLE task_runs ADD COLUMN cancel_values jsonb;
-- The event that cancelled the run (its id), for runs a `cancel_on` event cancelled.
ALTER TABLE task_runs ADD COLUMN cancelled_by varchar(255);

-- The runs a cancelling event may find: of agents with cancel_on, in a state it cancels.
CREATE INDEX task_runs_cancellable ON task_runs (agent_id)
    WHERE cancel_values IS NOT NULL
      AND state IN ('running', 'waiting', 'resuming', 'awaiting_approval', 'deferred', 'failed', 'timed_out');

CREATE TABLE cancel_marks (
    agent_id   varchar(255) NOT NULL,
    -- The cancelling event: its id, type and time; runs of events published up to then are cancelled.
    event_id   varchar(255) NOT NULL,
    event_type varchar(255) NOT NULL,
    event_at   timestamptz NOT NULL,
    -- The values compared, path → value ({"payload.device_id": "tv-1"}); a run matches when its cancel_values has each.
    match      jsonb NOT NULL,
    -- What the run records say: `event <id> (alert.resolved, payload.device_id = tv-1)`.
    description text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, event_id, match)
);

CREATE INDEX cancel_marks_created ON cancel_marks (created_at);
