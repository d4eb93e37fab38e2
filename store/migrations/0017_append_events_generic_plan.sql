-- append_events' statements take the batch as a parameter, so PostgreSQL planned them afresh on every
-- call (a custom plan each time: the batch's contents never made a generic plan look cheaper). Their
-- plans do not depend on what the batch holds (ids to look up by primary key, rows to insert), so the
-- first plan of each session is kept.
-- Measured with benchmarks/event_store_bench.py (1,000 batches, this setting switched between runs,
-- two pairs), the database's CPU per batch: 1 event 0.35 -> 0.28-0.30 ms, 10 events 0.41-0.52 ->
-- 0.43 ms; 50 and 200 events the same within the noise (1.13-1.16 and 3.80-3.92 ms). It helps the
-- small batches of a quiet moment, not a burst's.
ALTER FUNCTION append_events(jsonb, boolean) SET plan_cache_mode = force_generic_plan;
