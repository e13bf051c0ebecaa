-- Resource lock metadata (seed Step 1.2, corrected). Mutual exclusion itself is a PostgreSQL advisory lock;
-- this table says who holds what, since when, until when.
-- Corrections: one holder row per resource (unique), resource_type checked, gen_random_uuid().
CREATE TABLE resource_locks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    resource_id   varchar(255) NOT NULL,
    resource_type varchar(50) NOT NULL CHECK (resource_type IN ('device', 'tree', 'userinterface')),
    owner_id      varchar(255) NOT NULL,
    owner_type    varchar(50) NOT NULL CHECK (owner_type IN ('agent', 'user', 'system')),
    acquired_at   timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    priority      integer NOT NULL CHECK (priority BETWEEN 1 AND 4),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (resource_type, resource_id)
);

CREATE INDEX idx_resource_locks_owner ON resource_locks (owner_id);
CREATE INDEX idx_resource_locks_expires ON resource_locks (expires_at);
