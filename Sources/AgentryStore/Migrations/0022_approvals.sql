-- Approvals: a run that needs a permission listed in its definition's approval_required_for (declared for the whole
-- handler, or asked for by a handler's result) waits in 'awaiting_approval' (stored, its delivery acked, no slot or
-- lock held) until someone approves or rejects it, or the request expires. A rejected or expired run ends 'rejected'.
ALTER TABLE task_runs DROP CONSTRAINT IF EXISTS task_runs_state_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_state_check CHECK (state IN (
    'running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled', 'lost', 'waiting', 'resuming',
    'awaiting_approval', 'rejected'));

CREATE TABLE approvals (
    approval_id   uuid PRIMARY KEY,
    run_id        uuid NOT NULL,
    agent_id      varchar(255) NOT NULL,
    agent_version varchar(50) NOT NULL,
    -- `<section>.<permission>`, as approval_required_for lists it.
    permission    varchar(255) NOT NULL,
    reason        text,
    -- What the handler asked to be called with once approved (its result's request_approval.then).
    then_payload  jsonb,
    -- 'definition': the run waits before its handler starts; 'handler': its result asked.
    requested_by  varchar(20) NOT NULL CHECK (requested_by IN ('definition', 'handler')),
    state         varchar(20) NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    decided_by    varchar(255),
    decided_at    timestamptz,
    comment       text
);

CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending';
CREATE INDEX approvals_run ON approvals (run_id);
CREATE INDEX approvals_agent ON approvals (agent_id, agent_version);
