-- event_log's row ids in time order, and its type index keyed by time too: the log is written a batch of rows at a
-- time, three rows per event with lifecycle events on, and two of its indexes put each new row at a random place.
--
-- * `id` defaulted to gen_random_uuid() (version 4, random), so every insert landed on a random leaf of the primary
--   key: a page read and dirtied per row, and once the index outgrows memory, a random read. Version 7 UUIDs (RFC
--   9562: Unix milliseconds first, then random bits) put each new id at the right edge, as the timestamp index does.
--   PostgreSQL 15 has no uuidv7(); agentry_uuid_v7() makes one from gen_random_uuid() (its random bits and variant)
--   with the time in the first six bytes and the version set to 7. Existing ids stay as they are.
-- * idx_event_log_type (event_type alone) holds few distinct values over millions of rows: each insert went into a
--   long run of equal keys, through PostgreSQL's deduplicated posting lists. Keyed (event_type, created_at), each
--   new row goes to the end of its type's range, and "the newest events of a type" (`agentry`'s and the admin API's
--   listing) reads the index in order instead of sorting.
--
-- Measured on the benchmark machine:
-- * a 455-row insert (a batch as the event log service writes them) right after a checkpoint, into a table of 3
--   million rows keyed by a uuid: 11.0-11.3 ms and 2.6-2.8 MB of WAL with random ids (a full-page image of nearly
--   every leaf it touched), 3.5-4.3 ms and 76-89 kB with version 7 ids;
-- * on a copy of a 171,000-row event_log (ten alternating rounds inside rolled-back transactions), both changes:
--   11.9 ms per 455-row batch before, 6.9 ms after (medians);
-- * in a 10,000-event drain, where the log's inserts share two busy cores with everything else, a little:
--   13.7 ms per insert before, 12.4 ms after (medians of three alternating drains), within their noise.
--
-- The new index is built while the migration holds its lock on event_log (migrations run in a transaction): on a
-- large log, run `agentry migrate` in a quiet moment.
CREATE OR REPLACE FUNCTION agentry_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

ALTER TABLE event_log ALTER COLUMN id SET DEFAULT agentry_uuid_v7();

CREATE INDEX IF NOT EXISTS idx_event_log_type_created ON event_log (event_type, created_at);
DROP INDEX IF EXISTS idx_event_log_type;
