-- Flow control and budgets. A run that may not start yet (its key at its concurrency, its rate bucket empty, its
-- budget spent, or a debounce window open) holds no slot: it is 'deferred', keeps its event in task_runs.event like a
-- waiting run, and resume_at says when it is tried again (the scheduler's leader publishes its resume then). A run a
-- budget refuses for good is 'over_budget'.
ALTER TABLE task_runs DROP CONSTRAINT IF EXISTS task_runs_state_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_state_check CHECK (state IN (
    'running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled', 'lost', 'waiting', 'resuming',
    'awaiting_approval', 'rejected', 'deferred', 'over_budget'));

-- Why a deferred run waits: concurrency, rate, budget or debounce.
ALTER TABLE task_runs ADD COLUMN defer_reason varchar(20);
-- The run's flow key (its definition's flow.key filled from its event), for agents with a flow key.
ALTER TABLE task_runs ADD COLUMN flow_key text;

CREATE INDEX task_runs_flow_running ON task_runs (agent_id, flow_key) WHERE state = 'running' AND flow_key IS NOT NULL;
CREATE INDEX task_runs_deferred_due ON task_runs (resume_at) WHERE state = 'deferred';
CREATE INDEX task_runs_deferred_key ON task_runs (agent_id, flow_key) WHERE state = 'deferred';

-- Rate limits: a token bucket per agent and bucket key ('' for the whole agent), shared by all workers.
CREATE TABLE flow_buckets (
    agent_id   varchar(255) NOT NULL,
    bucket     text NOT NULL,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (agent_id, bucket)
);

-- Budgets: what each period spent and what running runs reserved. scope is 'agent:<id>' or 'pool:<name>'.
CREATE TABLE budget_usage (
    scope        text NOT NULL,
    unit         varchar(10) NOT NULL CHECK (unit IN ('tokens', 'cost')),
    period       varchar(10) NOT NULL CHECK (period IN ('hour', 'day', 'month')),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    limit_amount numeric NOT NULL,
    currency     varchar(3),
    used         numeric NOT NULL DEFAULT 0,
    reserved     numeric NOT NULL DEFAULT 0,
    -- Runs settled in the period (for the mean run, the default estimate).
    runs         integer NOT NULL DEFAULT 0,
    warned_at    timestamptz,
    exceeded_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, unit, period, period_start)
);

-- What a run reserved of each budget that applies to it, until its usage settles it.
CREATE TABLE budget_reservations (
    run_id       uuid NOT NULL,
    scope        text NOT NULL,
    unit         varchar(10) NOT NULL,
    period       varchar(10) NOT NULL,
    period_start timestamptz NOT NULL,
    amount       numeric NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, scope, unit, period)
);
CREATE INDEX budget_reservations_age ON budget_reservations (created_at);

-- The budgets that applied to a run when it started (its agent's, its pools', and its root run's): a child run
-- counts against its root's budgets too.
ALTER TABLE task_runs ADD COLUMN budgets jsonb;
