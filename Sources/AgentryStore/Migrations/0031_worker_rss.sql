-- The status page's workers table (issue 31): each heartbeat records the worker's resident memory (RSS, bytes), so
-- that an operator sees a worker that grows. Null until a worker that records it beats.
ALTER TABLE workers ADD COLUMN IF NOT EXISTS rss_bytes bigint;
