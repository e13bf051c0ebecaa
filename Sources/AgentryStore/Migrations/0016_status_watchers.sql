-- Status notifications only while someone watches.
--
-- The statement triggers of 0011 notify `agentry_status` after every statement that changes runs, instances, locks,
-- waiters or agents, for the status WebSocket. PostgreSQL serializes the commits of all notifying transactions of a
-- cluster (each takes one lock from its notify until the end of its commit, WAL flush included), so the claim and
-- outcome statements of every worker committed one at a time, and each notification woke the listening admin
-- endpoints, whether any status client was connected or not. On the benchmark machine (one worker, two cores) the
-- gain is small: alternating 10,000-event drains with the trigger function notifying always and only while watched,
-- medians 5,181 against 5,276 events/s with lifecycle events off (six pairs) and 3,198 against 3,341 with them on
-- (three pairs), within the noise. The serialization grows with the number of workers committing at once.
--
-- Now a status hub (an admin endpoint with at least one WebSocket client) keeps a row in status_watchers, renewed
-- while it has clients and deleted when the last one leaves (it expires by itself should the hub die), and the
-- triggers notify only while a row is current. A hub registers before it reads the snapshot it sends a new client,
-- so nothing that changes after that snapshot goes unnotified.
CREATE TABLE IF NOT EXISTS status_watchers (
    hub_id     varchar(64) PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION agentry_status_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM status_watchers WHERE expires_at > now()) THEN
        PERFORM pg_notify('agentry_status', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;
