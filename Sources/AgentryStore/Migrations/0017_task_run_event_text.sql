-- An event's id is whatever its publisher set as `message_id` (any string of 1…255 bytes, e.g. `order-42`), or a
-- UUID when Agentry made it. event_log.event_id has always been varchar(255); task_runs.event_id was uuid, so a claim
-- of an event whose id is not a UUID failed (`invalid input syntax for type uuid`) and was tried again for ever.
-- The indexes on event_id (idx_task_runs_event, task_runs_one_completion) are rebuilt by the type change.
ALTER TABLE task_runs ALTER COLUMN event_id TYPE varchar(255) USING event_id::text;
