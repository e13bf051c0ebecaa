-- Run slots: max_parallel_tasks rows per agent. A run takes a free slot (or one whose worker stopped sending
-- heartbeats) with FOR UPDATE SKIP LOCKED, in the same statement that records it, and gives it back in the
-- statement that records its outcome: the limit holds across every worker without serialising claims.
CREATE TABLE agent_slots (
    agent_id   varchar(255) NOT NULL,
    slot       integer NOT NULL CHECK (slot >= 0),
    run_id     uuid,
    worker_id  varchar(255),
    taken_at   timestamptz,
    PRIMARY KEY (agent_id, slot)
);
