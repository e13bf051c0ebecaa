-- The admin endpoint's live status (issue 6): statements that change what the status page shows notify channel
-- `agentry_status` with the table's name, so every host's admin endpoint learns of a change as it happens instead of
-- polling. Statement-level: one notification per statement however many rows it touched (and PostgreSQL folds
-- identical notifications of one transaction into one).
CREATE FUNCTION agentry_status_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentry_status', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER agent_instances_status AFTER INSERT OR UPDATE OR DELETE ON agent_instances
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
CREATE TRIGGER task_runs_status AFTER INSERT OR UPDATE OR DELETE ON task_runs
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
CREATE TRIGGER resource_locks_status AFTER INSERT OR UPDATE OR DELETE ON resource_locks
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
CREATE TRIGGER resource_lock_waiters_status AFTER INSERT OR UPDATE OR DELETE ON resource_lock_waiters
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
CREATE TRIGGER agents_status AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
CREATE TRIGGER agent_registry_status AFTER INSERT OR UPDATE OR DELETE ON agent_registry
    FOR EACH STATEMENT EXECUTE FUNCTION agentry_status_notify();
