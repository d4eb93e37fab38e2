-- Worker leases: a worker whose event loop stops (frozen, hung) while its process and database sessions
-- live on keeps its liveness lock (0011), so its streaming answers were never closed. Each worker now
-- renews a lease every few seconds from its event loop (server/hub.py). When a lease has not been
-- renewed for its `lease_s` (MENTOR_WORKER_LEASE_S), another worker fences it: it ends that worker's
-- database sessions (which frees its liveness lock and any row locks), marks the lease fenced, and
-- closes its answers as `interrupted` like a dead worker's. If the worker runs again, its next batch
-- of events is refused here (SQLSTATE MW001) — nothing is written after the `done` its clients have
-- seen — and it ends itself; its process manager starts a fresh one. A writer with no lease row is
-- refused too, so old leases can be deleted.
CREATE TABLE worker_leases (
    id bigint PRIMARY KEY,
    app_name text NOT NULL,          -- the worker's application_name in pg_stat_activity
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    lease_s real NOT NULL,           -- how long the worker may go without renewing (its own setting)
    fenced boolean NOT NULL DEFAULT false
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON worker_leases TO mentor_service;
    END IF;
END $$;

DROP FUNCTION append_events(jsonb, boolean);
CREATE FUNCTION append_events(batch jsonb, announce boolean, writer bigint DEFAULT NULL) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    ids uuid[] := ARRAY(SELECT DISTINCT (e->>'c')::uuid FROM jsonb_array_elements(batch) e ORDER BY 1);
    missing uuid;
    seqs bigint[];
    fenced boolean;
BEGIN
    -- a writing worker must hold a lease that was not fenced off; FOR SHARE holds the fence (an UPDATE
    -- of the row) back until this batch commits, and a batch after the fence sees it
    IF writer IS NOT NULL THEN
        SELECT l.fenced FROM worker_leases l WHERE l.id = writer FOR SHARE INTO fenced;
        IF fenced IS DISTINCT FROM false THEN
            RAISE EXCEPTION 'worker % was fenced off: its lease expired', writer USING ERRCODE = 'MW001';
        END IF;
    END IF;
    -- rows locked in id order: concurrent writers (other workers) cannot deadlock
    PERFORM 1 FROM conversations WHERE id = ANY(ids) ORDER BY id FOR UPDATE;
    SELECT i FROM unnest(ids) i WHERE NOT EXISTS (SELECT 1 FROM conversations v WHERE v.id = i) LIMIT 1
        INTO missing;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'conversation % not found', missing USING ERRCODE = 'no_data_found';
    END IF;
    WITH items AS (
        SELECT * FROM jsonb_to_recordset(batch)
            AS x(o int, c uuid, u bigint, m bigint, t text, p jsonb, f boolean, fc text, fs text, fu jsonb)
    ), counts AS (
        SELECT c, count(*)::int AS n FROM items GROUP BY c
    ), bumped AS (
        -- updated_at (indexed, for "recent conversations") moves at most once a second: the other
        -- updates change no indexed column and stay on their page (HOT), without new index entries
        UPDATE conversations v SET last_seq = v.last_seq + counts.n,
               updated_at = CASE WHEN v.updated_at < now() - interval '1 second' THEN now() ELSE v.updated_at END
          FROM counts WHERE v.id = counts.c
        RETURNING v.id, v.last_seq - counts.n AS base
    ), numbered AS (
        SELECT i.*, b.base + row_number() OVER (PARTITION BY i.c ORDER BY i.o) AS seq
          FROM items i JOIN bumped b ON b.id = i.c
    ), events AS (
        INSERT INTO conversation_events (conversation_id, seq, user_id, message_id, type, payload)
        SELECT c, seq, u, m, t, p FROM numbered
    ), tools AS (
        INSERT INTO tool_calls (message_id, conversation_id, user_id, name, args, result, error)
        SELECT m, c, u, p->>'name', coalesce(p->'args', '{}'), coalesce(p->'data', 'null'), p->>'error'
          FROM items WHERE t = 'tool_result' ORDER BY o
    ), cites AS (
        INSERT INTO citations (message_id, conversation_id, user_id, chunk_id, source, title, snippet)
        SELECT m, c, u, (SELECT k.id FROM chunks k WHERE k.id = (p->>'chunk_id')::bigint), p->>'source',
               p->>'title', p->>'snippet'
          FROM items WHERE t = 'citation' ORDER BY o
    ), finished AS (
        UPDATE messages g SET content = l.fc, status = l.fs, usage = l.fu
          FROM (SELECT DISTINCT ON (m) m, fc, fs, fu FROM items WHERE f ORDER BY m, o DESC) l
         WHERE g.id = l.m
    )
    SELECT array_agg(seq ORDER BY o) FROM numbered INTO seqs;
    IF announce THEN
        FOR n IN 0 .. (cardinality(ids) - 1) / 200 LOOP
            PERFORM pg_notify('mentor_events', array_to_string(ids[n * 200 + 1 : n * 200 + 200], ' '));
        END LOOP;
    END IF;
    RETURN seqs;
END $$;

ALTER FUNCTION append_events(jsonb, boolean, bigint) SET plan_cache_mode = force_generic_plan;
