-- The event log: every event published on the bus, once (seed Step 1.1, corrected).
-- Corrections to the seed: gen_random_uuid() is built in (uuid_generate_v4 needs the uuid-ossp extension);
-- priority is checked to be a known level; the event's own source, correlation and causation ids are kept;
-- events no agent handled are marked, and whether that was announced (event.unhandled) is recorded.
CREATE TABLE event_log (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id            varchar(255) NOT NULL UNIQUE,
    event_type          varchar(255) NOT NULL,
    payload             jsonb NOT NULL,
    priority            integer NOT NULL CHECK (priority BETWEEN 1 AND 4),
    "timestamp"         timestamptz NOT NULL,
    source              varchar(255),
    correlation_id      varchar(255),
    causation_id        varchar(255),
    unhandled           boolean NOT NULL DEFAULT false,
    unhandled_announced boolean NOT NULL DEFAULT false,
    processed_by        varchar(255),
    processed_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_event_log_type ON event_log (event_type);
CREATE INDEX idx_event_log_priority ON event_log (priority);
CREATE INDEX idx_event_log_timestamp ON event_log ("timestamp");
CREATE INDEX idx_event_log_correlation ON event_log (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX idx_event_log_unhandled ON event_log (created_at) WHERE unhandled;
