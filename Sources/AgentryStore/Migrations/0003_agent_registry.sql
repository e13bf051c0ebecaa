-- The agent registry (seed Step 1.3/1.4, corrected).
-- Corrections: agent_id is unique per version, not alone (the seed's UNIQUE(agent_id) forbade a second version);
-- triggers belong to one version and are stored once per (agent, version, event type), so re-registering does
-- not duplicate them.
CREATE TABLE agent_registry (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id         varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    version          varchar(50) NOT NULL,
    author           varchar(255) NOT NULL,
    description      text,
    goal_type        varchar(50) NOT NULL,
    goal_description text NOT NULL,
    definition       jsonb NOT NULL,
    status           varchar(50) NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'retired')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, version)
);

CREATE INDEX idx_agent_registry_agent_id ON agent_registry (agent_id);
CREATE INDEX idx_agent_registry_status ON agent_registry (status);

CREATE TABLE agent_event_triggers (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id   varchar(255) NOT NULL,
    version    varchar(50) NOT NULL,
    event_type varchar(255) NOT NULL,
    priority   varchar(50) NOT NULL CHECK (priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    filters    jsonb,
    FOREIGN KEY (agent_id, version) REFERENCES agent_registry (agent_id, version) ON DELETE CASCADE,
    UNIQUE (agent_id, version, event_type)
);

CREATE INDEX idx_agent_triggers_event ON agent_event_triggers (event_type);
