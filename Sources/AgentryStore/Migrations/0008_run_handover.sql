-- A run that outlives the broker's consumer timeout is handed over: its event is kept here and its delivery acked
-- early, so that RabbitMQ neither redelivers it nor closes the channel. Should its worker die, the worker that
-- declares it lost publishes the event again to the agent's queue.
ALTER TABLE task_runs ADD COLUMN event jsonb;
ALTER TABLE task_runs ADD COLUMN handed_over_at timestamptz;
