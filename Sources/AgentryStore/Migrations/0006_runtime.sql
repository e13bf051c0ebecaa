-- The worker runtime: workers and their heartbeats, agent instances (one per agent a worker serves), task runs,
-- and the state operators ask agents to be in (running, paused, stopped), which every worker obeys.

CREATE TABLE workers (
    worker_id    varchar(255) PRIMARY KEY,
    host         varchar(255) NOT NULL,
    pid          integer NOT NULL,
    version      varchar(50) NOT NULL,
    labels       jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,
    status       varchar(20) NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopping', 'stopped', 'lost'))
);

-- The seed's AgentInstance: one row per (worker, agent) the worker serves.
CREATE TABLE agent_instances (
    instance_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      varchar(255) NOT NULL,
    version       varchar(50) NOT NULL,
    worker_id     varchar(255) NOT NULL REFERENCES workers (worker_id) ON DELETE CASCADE,
    state         varchar(20) NOT NULL CHECK (state IN ('idle', 'running', 'paused', 'error', 'stopped')),
    current_task  uuid,
    running_tasks integer NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    error         text,
    UNIQUE (worker_id, agent_id)
);

CREATE INDEX idx_agent_instances_agent ON agent_instances (agent_id);

-- One row per attempt to run an agent's task for an event (skipped events included).
CREATE TABLE task_runs (
    run_id        uuid PRIMARY KEY,
    agent_id      varchar(255) NOT NULL,
    agent_version varchar(50) NOT NULL,
    event_id      uuid NOT NULL,
    event_type    varchar(255) NOT NULL,
    priority      integer NOT NULL CHECK (priority BETWEEN 1 AND 4),
    worker_id     varchar(255),
    instance_id   uuid,
    attempt       integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    state         varchar(20) NOT NULL
                  CHECK (state IN ('running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled', 'lost')),
    event_at      timestamptz,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    -- The handler's result (stdout JSON of exec, response JSON of http).
    result        jsonb,
    -- Bounded stdout (when not JSON) and stderr of exec handlers.
    output        text,
    stderr        text,
    exit_status   integer,
    -- Why it was skipped, failed, cancelled or lost.
    message       text,
    -- When the next attempt is due, for a failed attempt that will be retried.
    retry_at      timestamptz
);

-- Exactly one completion per agent and event: a redelivered event whose run succeeded (or was skipped) is not run again.
CREATE UNIQUE INDEX task_runs_one_completion ON task_runs (agent_id, event_id) WHERE state IN ('succeeded', 'skipped');
CREATE INDEX idx_task_runs_running ON task_runs (agent_id) WHERE state = 'running';
CREATE INDEX idx_task_runs_event ON task_runs (event_id);
CREATE INDEX idx_task_runs_started ON task_runs (started_at DESC);

-- What operators asked: running (take events), paused (events queue up), stopped (instances end, events queue up).
ALTER TABLE agents ADD COLUMN desired_state varchar(20) NOT NULL DEFAULT 'running'
    CHECK (desired_state IN ('running', 'paused', 'stopped'));
