-- The event log's index on priority alone goes: four values over millions of rows is never a plan PostgreSQL picks
-- (a search by priority reads a quarter of the table either way), and every event paid for it on insert: a worker
-- writes three rows per event (the event, agent.task.started, agent.task.completed). Searches by priority within a
-- type or a time range use idx_event_log_type and idx_event_log_timestamp.
DROP INDEX IF EXISTS idx_event_log_priority;
