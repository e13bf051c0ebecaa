-- The locks a run held, for its page: resource_locks keeps only each resource's current (or last) holder, and the
-- lock manager's resource.* events are announced only when configured. When a hold of a run ends, the lock manager
-- appends one entry per resource to the run's row: [{"resource", "resource_type", "resource_id", "fencing_token",
-- "acquired_at", "expires_at", "released_at", "ended": "released" | "expired" | "lost"}]. One small update per hold,
-- of a column no index covers (a HOT update), on a row the run writes anyway.
ALTER TABLE task_runs ADD COLUMN locks jsonb;
