-- Schedules and delayed events.
--
-- scheduled_events (0004) gains what a schedule needs to be run by every worker and published once per tick in the
-- whole cluster: a time zone, what to do with ticks missed while no scheduler ran, jitter, a window, the agent that
-- declared it (NULL: made on its own). A tick is claimed by moving next_run forward with a compare-and-set on its
-- current value, in the same statement that writes the tick's event into delayed_events: a tick is claimed and
-- recorded together, or not at all.
ALTER TABLE scheduled_events
    ADD COLUMN time_zone      varchar(64)  NOT NULL DEFAULT 'UTC',
    ADD COLUMN missed         varchar(16)  NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'fire_once')),
    ADD COLUMN jitter_seconds integer      NOT NULL DEFAULT 0 CHECK (jitter_seconds BETWEEN 0 AND 3600),
    ADD COLUMN grace_seconds  integer      NOT NULL DEFAULT 10 CHECK (grace_seconds BETWEEN 0 AND 86400),
    ADD COLUMN starts_at      timestamptz,
    ADD COLUMN ends_at        timestamptz,
    ADD COLUMN description    text         NOT NULL DEFAULT '',
    ADD COLUMN agent_id       varchar(255),
    ADD COLUMN updated_at     timestamptz  NOT NULL DEFAULT now(),
    ADD COLUMN ticks_published bigint      NOT NULL DEFAULT 0,
    ADD COLUMN ticks_missed   bigint       NOT NULL DEFAULT 0;
UPDATE scheduled_events SET name = id::text WHERE name IS NULL;
ALTER TABLE scheduled_events ALTER COLUMN name SET NOT NULL;
CREATE INDEX idx_scheduled_events_agent ON scheduled_events (agent_id) WHERE agent_id IS NOT NULL;

-- Events to publish later: `agentry publish --at/--delay`, the API's deliver_at, agents' delayed follow-ups, and
-- schedules' ticks. A row is the whole event; the scheduler leases due rows (lease_until), publishes them with the
-- broker's confirm and marks them published. A scheduler that dies mid-publish leaves its lease to expire, and the
-- row is published again under the same event id, which the event log and the workers' run claims take once.
CREATE TABLE delayed_events (
    event_id       varchar(255) PRIMARY KEY,
    event_type     varchar(255) NOT NULL,
    payload        jsonb        NOT NULL DEFAULT '{}'::jsonb,
    priority       integer      NOT NULL CHECK (priority BETWEEN 1 AND 4),
    "timestamp"    timestamptz  NOT NULL,
    source         varchar(255),
    correlation_id varchar(255),
    causation_id   varchar(255),
    deliver_at     timestamptz  NOT NULL,
    state          varchar(16)  NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'published', 'cancelled')),
    schedule_id    uuid REFERENCES scheduled_events (id) ON DELETE SET NULL,
    tick_at        timestamptz,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    lease_until    timestamptz,
    leased_by      varchar(255),
    attempts       integer      NOT NULL DEFAULT 0,
    last_error     text,
    finished_at    timestamptz,
    cancelled_by   varchar(255)
);
CREATE INDEX idx_delayed_events_due ON delayed_events (deliver_at) WHERE state = 'pending';
CREATE INDEX idx_delayed_events_finished ON delayed_events (finished_at) WHERE state <> 'pending';
