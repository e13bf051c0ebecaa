-- People take devices too (issue 31): a hold asked for by a person (`agentry locks acquire`, the admin API, the status
-- page) outlives the command that asked. The advisory lock of a hold lives on a database session, so no short-lived
-- process can hold it: the request is written here and the hold keeper (every worker and `agentry admin` run one; the
-- one that leads `agentry.holds` acts) takes it through the lock manager like any agent, holds it on its own session
-- until `hold_until` or a release, then gives it back. A new leader takes again the holds still `held`.
--
-- Logged, unlike the lock tables of 0010: a hold is an intent that must survive a restart of PostgreSQL or of every
-- worker (the keeper takes it again), and the history of who took what is worth keeping.
CREATE TABLE lock_holds (
    id            uuid PRIMARY KEY,
    resource_type varchar(50) NOT NULL,
    resource_id   varchar(255) NOT NULL,
    owner_id      varchar(255) NOT NULL,
    owner_type    varchar(50) NOT NULL CHECK (owner_type IN ('user', 'system')),
    priority      integer NOT NULL CHECK (priority BETWEEN 1 AND 4),
    hold_for      interval NOT NULL,          -- how long it lasts once granted
    requested_at  timestamptz NOT NULL DEFAULT now(),
    requested_by  text,                       -- who asked (the CLI's user and host, the admin API's caller)
    wait_until    timestamptz NOT NULL,       -- a request not granted by then is withdrawn (`timed_out`)
    state         text NOT NULL DEFAULT 'requested'
                  CHECK (state IN ('requested', 'held', 'released', 'expired', 'timed_out')),
    keeper_id     text,                       -- the keeper that works on it (its worker id)
    acquired_at   timestamptz,
    hold_until    timestamptz,                -- set at the grant: acquired_at + hold_for
    fencing_token bigint,
    ended_at      timestamptz,                -- when it left `requested` or `held`
    freed_at      timestamptz,                -- when the keeper gave the advisory lock back (or never held it)
    message       text,                       -- why it ended, or what it waits for
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One live request or hold per owner and resource.
CREATE UNIQUE INDEX idx_lock_holds_live_owner ON lock_holds (resource_type, resource_id, owner_id)
    WHERE state IN ('requested', 'held');
-- What the keeper reads at each sweep.
CREATE INDEX idx_lock_holds_live ON lock_holds (requested_at) WHERE state IN ('requested', 'held');
-- The recent history (the CLI's and the API's lists).
CREATE INDEX idx_lock_holds_requested ON lock_holds (requested_at DESC);

-- Every change wakes the keepers at once (they also look every second).
CREATE FUNCTION agentry_lock_holds_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentry_holds', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER lock_holds_notify AFTER INSERT OR UPDATE ON lock_holds
    FOR EACH ROW EXECUTE FUNCTION agentry_lock_holds_notify();
-- And the status page's Locks panel.
CREATE TRIGGER lock_holds_status AFTER INSERT OR UPDATE OR DELETE ON lock_holds
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
