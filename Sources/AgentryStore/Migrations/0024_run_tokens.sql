-- Run tokens: an exec handler gets a short-lived token, signed with this key, with which it may call the admin API
-- back within its grants (publish events, invoke its subagents, report its run's progress). Every worker and admin
-- endpoint reads the key here; two random UUIDs (pg_strong_random) make 244 random bits.
CREATE TABLE signing_keys (
    name       varchar(100) PRIMARY KEY,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO signing_keys (name, secret)
VALUES ('run-tokens', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
ON CONFLICT DO NOTHING;

-- What a running handler reports about itself (POST /api/runs/{run_id}/progress), shown with the run.
ALTER TABLE task_runs ADD COLUMN progress jsonb;
