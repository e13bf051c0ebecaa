-- The lock manager (issue 5). Mutual exclusion is a session-level advisory lock (bigint key, see ResourceKey) held
-- on a connection dedicated to the hold; `resource_locks` says who holds it and until when, and
-- `resource_lock_waiters` who waits, by priority then arrival. Both are UNLOGGED: advisory locks do not survive a
-- server restart, so neither should the rows that describe them (and writing them costs no WAL flush).
-- The fencing sequence stays logged: its tokens must keep increasing across restarts.

-- A row is written when a resource is granted and stays after its release: whether it is held is the advisory lock's
-- truth (`agentry_lock_holder_pid(lock_key) = holder_pid`), so a release only unlocks, and the next grant updates the
-- row in place (a HOT update: no indexed column changes). The table has one row per resource ever locked; the owner
-- and expiry indexes of 0002 go, as every lookup is by resource.
ALTER TABLE resource_locks SET UNLOGGED;
DROP INDEX idx_resource_locks_owner;
DROP INDEX idx_resource_locks_expires;
ALTER TABLE resource_locks
    ADD COLUMN lock_key      bigint,
    ADD COLUMN fencing_token bigint,
    ADD COLUMN holder_pid    integer,
    ADD COLUMN worker_id     text,
    ADD COLUMN run_id        uuid,
    ADD COLUMN hold_id       uuid;

CREATE SEQUENCE resource_lock_fencing;

CREATE UNLOGGED TABLE resource_lock_waiters (
    id            uuid NOT NULL,          -- the request: one per acquire, one row per resource it needs
    resource_type varchar(50) NOT NULL,
    resource_id   varchar(255) NOT NULL,
    lock_key      bigint NOT NULL,
    owner_id      varchar(255) NOT NULL,
    owner_type    varchar(50) NOT NULL CHECK (owner_type IN ('agent', 'user', 'system')),
    priority      integer NOT NULL CHECK (priority BETWEEN 1 AND 4),
    queued_at     timestamptz NOT NULL,
    wait_until    timestamptz NOT NULL,
    backend_pid   integer NOT NULL,       -- the waiter's listening session: a row whose session is gone is void
    worker_id     text,
    run_id        uuid,
    PRIMARY KEY (id, resource_type, resource_id)
);
CREATE INDEX idx_resource_lock_waiters_key ON resource_lock_waiters (lock_key, priority, queued_at);

-- The backend that holds the advisory lock `p_key` in this database, or NULL.
CREATE FUNCTION agentry_lock_holder_pid(p_key bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT l.pid FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = ((p_key >> 32) & 4294967295)::oid
       AND l.objid = (p_key & 4294967295)::oid
     LIMIT 1
$$;

-- Takes all of `p_keys` for the request, or none. Runs on the connection that will hold the locks.
-- Decisions about one resource are serialised by a transaction-level gate lock (the two-int4 advisory key space,
-- which never meets the bigint keys held by sessions), taken in key order so that gates cannot deadlock. A request
-- takes the locks only when no live waiter on any of its resources ranks before it (priority, then arrival); if it
-- cannot and `p_wait_until` is set, it is queued (once: its arrival time is kept across attempts). For a resource it
-- did not get, the row says its position and the holder; a holder more than `p_takeback_grace` past its expiry has
-- its session terminated (`o_taken_back`), which frees its locks.
CREATE FUNCTION agentry_lock_acquire(
    p_request uuid, p_types text[], p_ids text[], p_keys bigint[], p_owner text, p_owner_type text,
    p_priority integer, p_hold interval, p_wait_until timestamptz, p_waiter_pid integer, p_worker text, p_run uuid,
    p_takeback_grace interval)
RETURNS TABLE (o_type text, o_id text, o_granted boolean, o_token bigint, o_acquired timestamptz, o_expires timestamptz,
               o_position integer, o_holder text, o_holder_expires timestamptz, o_taken_back boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_keys    bigint[];
    v_key     bigint;
    v_locked  bigint[] := '{}';
    v_queued  timestamptz;
    v_ahead   boolean := false;
    v_ok      boolean := false;
    v_holder  resource_locks%ROWTYPE;
    v_pid     integer;
    i         integer;
BEGIN
    SELECT array_agg(DISTINCT k ORDER BY k) INTO v_keys FROM unnest(p_keys) AS k;
    FOREACH v_key IN ARRAY v_keys LOOP
        PERFORM pg_advisory_xact_lock((v_key >> 32)::integer, v_key::bit(32)::integer);
    END LOOP;

    -- Nobody waits for these resources (the common case): straight to the locks.
    IF EXISTS (SELECT 1 FROM resource_lock_waiters w WHERE w.lock_key = ANY (v_keys)) THEN
        UPDATE resource_lock_waiters SET backend_pid = p_waiter_pid, wait_until = coalesce(p_wait_until, wait_until)
         WHERE id = p_request;
        DELETE FROM resource_lock_waiters w
         WHERE w.lock_key = ANY (v_keys)
           AND (w.wait_until < v_now OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.backend_pid));
        SELECT min(w.queued_at) INTO v_queued FROM resource_lock_waiters w WHERE w.id = p_request;

        SELECT EXISTS (
            SELECT 1 FROM resource_lock_waiters w
             WHERE w.lock_key = ANY (v_keys) AND w.id <> p_request
               AND (w.priority < p_priority
                    OR (w.priority = p_priority AND (v_queued IS NULL OR (w.queued_at, w.id) < (v_queued, p_request))))
        ) INTO v_ahead;
    END IF;

    IF NOT v_ahead THEN
        v_ok := true;
        FOREACH v_key IN ARRAY v_keys LOOP
            IF pg_try_advisory_lock(v_key) THEN
                v_locked := v_locked || v_key;
            ELSE
                v_ok := false;
                EXIT;
            END IF;
        END LOOP;
        IF NOT v_ok THEN
            FOREACH v_key IN ARRAY v_locked LOOP
                PERFORM pg_advisory_unlock(v_key);
            END LOOP;
        END IF;
    END IF;

    IF v_ok THEN
        DELETE FROM resource_lock_waiters WHERE id = p_request;
        FOR i IN 1 .. array_length(p_keys, 1) LOOP
            -- A row left by a holder whose session ended is overwritten: holding the advisory lock proves it stale.
            INSERT INTO resource_locks AS l (resource_type, resource_id, owner_id, owner_type, acquired_at, expires_at,
                                             priority, lock_key, fencing_token, holder_pid, worker_id, run_id, hold_id)
            VALUES (p_types[i], p_ids[i], p_owner, p_owner_type, v_now, v_now + p_hold, p_priority, p_keys[i],
                    nextval('resource_lock_fencing'), pg_backend_pid(), p_worker, p_run, p_request)
            ON CONFLICT (resource_type, resource_id) DO UPDATE SET
                owner_id = EXCLUDED.owner_id, owner_type = EXCLUDED.owner_type, acquired_at = EXCLUDED.acquired_at,
                expires_at = EXCLUDED.expires_at, priority = EXCLUDED.priority, lock_key = EXCLUDED.lock_key,
                fencing_token = EXCLUDED.fencing_token, holder_pid = EXCLUDED.holder_pid,
                worker_id = EXCLUDED.worker_id, run_id = EXCLUDED.run_id, hold_id = EXCLUDED.hold_id,
                created_at = now()
            RETURNING l.fencing_token INTO o_token;
            o_type := p_types[i]; o_id := p_ids[i]; o_granted := true;
            o_acquired := v_now; o_expires := v_now + p_hold; o_position := 0;
            o_holder := NULL; o_holder_expires := NULL; o_taken_back := false;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

    IF p_wait_until IS NOT NULL AND v_queued IS NULL THEN
        INSERT INTO resource_lock_waiters (id, resource_type, resource_id, lock_key, owner_id, owner_type, priority,
                                           queued_at, wait_until, backend_pid, worker_id, run_id)
        SELECT p_request, p_types[j], p_ids[j], p_keys[j], p_owner, p_owner_type, p_priority, v_now, p_wait_until,
               p_waiter_pid, p_worker, p_run
          FROM generate_subscripts(p_keys, 1) AS j;
        v_queued := v_now;
    END IF;

    FOR i IN 1 .. array_length(p_keys, 1) LOOP
        o_type := p_types[i]; o_id := p_ids[i]; o_granted := false; o_token := NULL;
        o_acquired := NULL; o_expires := NULL; o_holder := NULL; o_holder_expires := NULL; o_taken_back := false;
        SELECT 1 + count(*) INTO o_position FROM resource_lock_waiters w
         WHERE w.lock_key = p_keys[i] AND w.id <> p_request
           AND (w.priority < p_priority
                OR (w.priority = p_priority AND (v_queued IS NULL OR (w.queued_at, w.id) < (v_queued, p_request))));
        SELECT * INTO v_holder FROM resource_locks l WHERE l.resource_type = p_types[i] AND l.resource_id = p_ids[i];
        IF FOUND THEN
            v_pid := agentry_lock_holder_pid(p_keys[i]);
            IF v_pid IS NOT NULL AND v_pid = v_holder.holder_pid THEN
                o_holder := v_holder.owner_id;
                o_holder_expires := v_holder.expires_at;
                IF v_holder.expires_at + p_takeback_grace < v_now AND v_pid <> pg_backend_pid() THEN
                    -- Wait (up to 2 s) for the session to end, so that its locks are free when this returns.
                    o_taken_back := pg_terminate_backend(v_pid, 2000);
                END IF;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Releases keys on the session that holds them and tells the waiters. The rows stay (see above).
CREATE FUNCTION agentry_lock_release(p_keys bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_key bigint;
BEGIN
    FOREACH v_key IN ARRAY p_keys LOOP
        PERFORM pg_advisory_unlock(v_key);
        PERFORM pg_notify('agentry_locks', v_key::text);
    END LOOP;
END
$$;

-- A waiter that gives up (timed out, cancelled): its rows go, and the others re-check at once.
CREATE FUNCTION agentry_lock_withdraw(p_request uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_key bigint;
BEGIN
    FOR v_key IN DELETE FROM resource_lock_waiters WHERE id = p_request RETURNING lock_key LOOP
        PERFORM pg_notify('agentry_locks', v_key::text);
    END LOOP;
END
$$;

-- An administrator takes a resource back: the holder's session is terminated (which frees every lock of that hold
-- and tells its worker, who stops the task) and the waiters are told. Nothing when nobody holds it.
CREATE FUNCTION agentry_lock_force_release(p_type text, p_id text)
RETURNS TABLE (o_owner text, o_owner_type text, o_worker text, o_run uuid, o_token bigint, o_pid integer, o_terminated boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_row resource_locks%ROWTYPE;
    v_pid integer;
BEGIN
    SELECT * INTO v_row FROM resource_locks WHERE resource_type = p_type AND resource_id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_pid := agentry_lock_holder_pid(v_row.lock_key);
    IF v_pid IS NULL OR v_pid <> v_row.holder_pid OR v_pid = pg_backend_pid() THEN
        RETURN;
    END IF;
    o_terminated := pg_terminate_backend(v_pid, 5000);
    PERFORM pg_notify('agentry_locks', v_row.lock_key::text);
    o_owner := v_row.owner_id; o_owner_type := v_row.owner_type; o_worker := v_row.worker_id; o_run := v_row.run_id;
    o_token := v_row.fencing_token; o_pid := v_row.holder_pid;
    RETURN NEXT;
END
$$;
