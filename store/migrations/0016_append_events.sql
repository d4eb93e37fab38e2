-- A batch of conversation events stored by one statement (the event writer's group commit, and every
-- other append): seqs taken from each conversation's `last_seq`, the events, their tool calls and
-- citations, the answers they finish, and (if asked) one NOTIFY `mentor_events` per 200 conversations.
-- The worker sends the batch as one JSON document and makes one call; the five statements it used to
-- send each cost a round trip and ~0.27 ms of the worker's Python per batch (its event loop's GIL).
--
-- batch: [{o: position, c: conversation, u: user, m: message, t: type, p: the event,
--          f: true when it finishes message m, fc: its content, fs: its status, fu: its usage}]
-- Returns the seqs in the batch's order. A conversation that does not exist: SQLSTATE P0002, nothing stored.
CREATE FUNCTION append_events(batch jsonb, announce boolean) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    ids uuid[] := ARRAY(SELECT DISTINCT (e->>'c')::uuid FROM jsonb_array_elements(batch) e ORDER BY 1);
    missing uuid;
    seqs bigint[];
BEGIN
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
