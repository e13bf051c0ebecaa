-- Filter and search over the event log and the runs (GET /api/events, GET /api/runs, `agentry events list`,
-- `agentry runs list`, the console's Runs and Events pages), paged by a keyset cursor, newest first:
-- events by ("timestamp", id), runs by (started_at, run_id). Every filter reads one index in that order and stops
-- after a page, whatever the table's size and however deep the cursor:
--
-- * the order itself, unfiltered, with since/until, priority (a filter on the ordered scan: four levels, the
--   rarest, critical, still fills a page within a few thousand rows) and a deep cursor: ("timestamp", id) and
--   (started_at, run_id), replacing the indexes on the time alone (a tie in time needs the id to be in order);
-- * events of a type, and runs of an agent, a state or an event type: (that column, time, id). The event log's
--   (event_type, created_at) index (0015) goes: its one reader, the newest events of a type, reads the new one;
-- * events of an agent: the agent an event concerns is its payload's agent_id (the worker's agent.task.* events),
--   else its source (the events an agent published); indexed as that expression, then time and id;
-- * text in the payload (`q`, a case-insensitive substring): a trigram GIN index over the payload's JSON text
--   (pg_trgm, a trusted extension since PostgreSQL 13: the database's owner creates it). A rare word reads only the
--   rows that hold it; a common one reads the ordered index and finds a page at once. Runs are searched in their
--   event's payload, through the event log's index and idx_task_runs_event. The index leaves out Agentry's own
--   agent.* events (two of every run's three events in a busy log): a trigram index over every row made each batch
--   the event log writes 2.3 times as slow. A search without a type covers the other events; with a type, the
--   type's index narrows the rows and the text is checked on them, agent.* events included.
--
-- Measured with 2 million events and 1 million runs (the numbers are in docs/performance.md): a rare type 53 ms before,
-- under 1 ms after; a rare word in the payload 9.9 s before (a scan of the whole log), a few ms after.
--
-- Each index is built while the migration holds its lock on the table (migrations run in a transaction): on a
-- large log, run `agentry migrate` in a quiet moment.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX IF NOT EXISTS event_log_keyset ON event_log ("timestamp", id);
DROP INDEX IF EXISTS idx_event_log_timestamp;
CREATE INDEX IF NOT EXISTS event_log_type_keyset ON event_log (event_type, "timestamp", id);
DROP INDEX IF EXISTS idx_event_log_type_created;
CREATE INDEX IF NOT EXISTS event_log_agent_keyset ON event_log ((COALESCE(payload ->> 'agent_id', source)), "timestamp", id);
CREATE INDEX IF NOT EXISTS event_log_payload_trgm ON event_log USING gin ((payload::text) gin_trgm_ops)
    WHERE event_type NOT LIKE 'agent.%';

CREATE INDEX IF NOT EXISTS task_runs_keyset ON task_runs (started_at, run_id);
DROP INDEX IF EXISTS idx_task_runs_started;
CREATE INDEX IF NOT EXISTS task_runs_agent_keyset ON task_runs (agent_id, started_at, run_id);
CREATE INDEX IF NOT EXISTS task_runs_state_keyset ON task_runs (state, started_at, run_id);
CREATE INDEX IF NOT EXISTS task_runs_type_keyset ON task_runs (event_type, started_at, run_id);
