-- Scheduled events (seed Step 4.2, corrected): a name to address a schedule by, a priority for what it emits,
-- and a last_fired_slot that hosts claim atomically so that two schedulers never emit the same firing twice.
CREATE TABLE scheduled_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            varchar(255) UNIQUE,
    event_type      varchar(255) NOT NULL,
    cron_expression varchar(255) NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority        integer NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 4),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_run        timestamptz,
    next_run        timestamptz,
    last_fired_slot timestamptz
);

CREATE INDEX idx_scheduled_events_next_run ON scheduled_events (next_run) WHERE enabled;
