-- Run trees: a run may delegate tasks to subagents (child runs) and wait for them without holding a slot, and be
-- called again with their results. A run that waits keeps its event here (task_runs.event) and its delivery is acked;
-- a child's end is recorded in run_children, and the last one (or the deadline) marks the parent 'resuming' and
-- publishes a resume message to the parent agent's queue.
ALTER TABLE task_runs DROP CONSTRAINT IF EXISTS task_runs_state_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_state_check CHECK (state IN (
    'running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled', 'lost',
    -- waiting for its children; its children ended (or the deadline passed) and its resume is on its way
    'waiting', 'resuming'));

-- The run that delegated this one (null for a run an event started), the root of its tree, and its depth (root 0).
ALTER TABLE task_runs ADD COLUMN parent_run_id uuid;
ALTER TABLE task_runs ADD COLUMN root_run_id uuid;
ALTER TABLE task_runs ADD COLUMN depth integer NOT NULL DEFAULT 0;
-- The delegated task a child run serves (null otherwise).
ALTER TABLE task_runs ADD COLUMN task varchar(255);
-- While waiting: {"on_failure": "fail"|"continue", "round": n} and the deadline; the round's children are in
-- run_children. resume_published_at: when the resume message was confirmed (null while it is due).
ALTER TABLE task_runs ADD COLUMN wait jsonb;
ALTER TABLE task_runs ADD COLUMN wait_until timestamptz;
ALTER TABLE task_runs ADD COLUMN resume_at timestamptz;
ALTER TABLE task_runs ADD COLUMN resume_published_at timestamptz;
-- How many times its handler was called (1, then one more per resume).
ALTER TABLE task_runs ADD COLUMN steps integer NOT NULL DEFAULT 1;

CREATE INDEX task_runs_parent ON task_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX task_runs_wait_due ON task_runs (wait_until) WHERE state = 'waiting';
CREATE INDEX task_runs_resume_due ON task_runs (resume_at) WHERE state = 'resuming' AND resume_published_at IS NULL;

-- The tasks a run delegated: one row per task, in the order asked, numbered across the run's rounds. The child's event
-- is kept (its id derived from the parent run and position), published to the subagent's queue after the row
-- commits; published_at null past a few seconds means its publish was lost (the worker died) and the scheduler's
-- leader publishes it again. The child's run records its end here.
CREATE TABLE run_children (
    parent_run_id uuid NOT NULL,
    position      integer NOT NULL CHECK (position >= 0),
    round         integer NOT NULL DEFAULT 1,
    task          varchar(255) NOT NULL,
    agent_id      varchar(255) NOT NULL,
    agent_version varchar(50) NOT NULL,
    version_range varchar(255) NOT NULL,
    event_id      text NOT NULL,
    event         jsonb NOT NULL,
    awaited       boolean NOT NULL,
    state         varchar(20) NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    child_run_id  uuid,
    result        jsonb,
    message       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    finished_at   timestamptz,
    PRIMARY KEY (parent_run_id, position)
);

CREATE INDEX run_children_unpublished ON run_children (created_at) WHERE published_at IS NULL;
CREATE INDEX run_children_event ON run_children (event_id);
