-- Publication state of agents. agent_registry holds every version (draft, published or retired);
-- agents holds, per agent, the version that is active now (the last one published, which may be lower than the
-- highest published version after a rollback) and whether the agent is retired.
ALTER TABLE agent_registry ADD COLUMN published_at timestamptz;

CREATE TABLE agents (
    agent_id       varchar(255) PRIMARY KEY,
    active_version varchar(50),
    status         varchar(50) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    -- The routing patterns (trigger types and pool patterns) bound to the agent's queue on the broker.
    bound_patterns jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (agent_id, active_version) REFERENCES agent_registry (agent_id, version)
);
