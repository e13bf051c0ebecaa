-- Feedback on finished runs, and canary versions.
--
-- run_feedback: one row per piece of feedback (a run may get several), from the CLI, the admin API or a run.feedback
-- event. At least one of rating, label, comment. event_id is the run.feedback event a row came from (null for the CLI
-- and the API): a redelivered event records nothing twice.
CREATE TABLE run_feedback (
    feedback_id   uuid PRIMARY KEY,
    run_id        uuid NOT NULL,
    agent_id      varchar(255) NOT NULL,
    agent_version varchar(50) NOT NULL,
    rating        smallint CHECK (rating BETWEEN 1 AND 5),
    label         varchar(20) CHECK (label IN ('correct', 'wrong', 'partially')),
    comment       text,
    given_by      varchar(255) NOT NULL,
    event_id      text UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (rating IS NOT NULL OR label IS NOT NULL OR comment IS NOT NULL)
);

CREATE INDEX run_feedback_run ON run_feedback (run_id);
CREATE INDEX run_feedback_agent ON run_feedback (agent_id, agent_version);

-- A canary: canary_percent of the agent's events (chosen from a hash of the event id) run at canary_version, the rest
-- at active_version. Both null when the agent has none.
ALTER TABLE agents ADD COLUMN canary_version varchar(50);
ALTER TABLE agents ADD COLUMN canary_percent integer CHECK (canary_percent BETWEEN 1 AND 100);
ALTER TABLE agents ADD COLUMN canary_started_at timestamptz;
ALTER TABLE agents ADD CONSTRAINT agents_canary_complete CHECK ((canary_version IS NULL) = (canary_percent IS NULL));
ALTER TABLE agents ADD CONSTRAINT agents_canary_version FOREIGN KEY (agent_id, canary_version) REFERENCES agent_registry (agent_id, version);
