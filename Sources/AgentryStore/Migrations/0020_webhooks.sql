-- Webhooks: signed requests from outside that become events (docs/webhooks.md).
--
-- webhook_sources holds the sources added through the admin API (PUT /api/webhooks/{source}); the sources of
-- webhooks.yaml live in the topology directory and are not stored here. `definition` is the source's settings as the
-- API takes them (scheme, secret_env, type, ...): the name of the environment variable that holds the secret, never
-- the secret.
CREATE TABLE IF NOT EXISTS webhook_sources (
    name       varchar(63) PRIMARY KEY,
    definition jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every request to POST /api/webhooks/{source}, accepted or refused, newest last. A delivery id is unique per source
-- among accepted deliveries only: a refused request's delivery id is whatever its unverified sender wrote, and must
-- not keep the genuine delivery with that id from being accepted. A replay of an accepted delivery is recorded as
-- `duplicate`, with the event id of the first. Rows older than 7 days are pruned (at most once a minute per admin
-- endpoint), and refused rows beyond the newest 10,000 too, so a flood of unsigned requests cannot grow the table.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id          bigserial    PRIMARY KEY,
    source      varchar(63)  NOT NULL,
    delivery_id varchar(255),
    received_at timestamptz  NOT NULL DEFAULT now(),
    event_id    varchar(255),
    outcome     varchar(16)  NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'refused')),
    reason      varchar(32),
    detail      text,
    remote      varchar(255)
);

CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_accepted ON webhook_deliveries (source, delivery_id) WHERE outcome = 'accepted';
CREATE INDEX IF NOT EXISTS webhook_deliveries_received ON webhook_deliveries (received_at);
