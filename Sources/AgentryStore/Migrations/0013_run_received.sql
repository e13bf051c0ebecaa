-- When the worker received the run's delivery from RabbitMQ. With event_at (the publish) and started_at (the claim)
-- it splits a run's wait in two: event_at → received_at is the broker's (the queue's backlog, the prefetch window),
-- received_at → started_at the worker's (a full agent slot, the claim). Null for runs recorded before this column.
ALTER TABLE task_runs ADD COLUMN IF NOT EXISTS received_at timestamptz;
