-- append_events' statements take the batch as a parameter, so PostgreSQL planned them afresh on every
-- call (a custom plan each time: the batch's contents never made a generic plan look cheaper), ~0.07 ms
-- of the database's CPU per batch. Their plans do not depend on what the batch holds (ids to look up by
-- primary key, rows to insert), so the first plan of each session is kept.
-- Measured (batches of 1, 10 and 50 token events, the database's CPU per batch, 1,000 batches, two
-- pairs): 0.33-0.34 -> 0.26-0.27 ms, 0.51-0.52 -> 0.44-0.45 ms, 1.17 -> 1.13-1.15 ms.
ALTER FUNCTION append_events(jsonb, boolean) SET plan_cache_mode = force_generic_plan;
