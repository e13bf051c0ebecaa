-- How many deliveries the instance takes at once: its share of the agent's max_parallel_tasks, which the instances
-- taking the agent's events divide among them (recounted with each heartbeat). Null while it consumes nothing
-- (paused, stopped) and for rows written before this column.
ALTER TABLE agent_instances ADD COLUMN IF NOT EXISTS prefetch integer;
