-- The inbox updates live: every change to a handoff (a new one, claimed, released, resolved, re-opened)
-- notifies `mentor_inbox` when its transaction commits; each worker tells its agents' sockets to reload
-- the queue (server/hub.py). The payload is the conversation id; sockets are told only "the queue changed".
CREATE FUNCTION notify_inbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('mentor_inbox', NEW.conversation_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER handoffs_notify AFTER INSERT OR UPDATE ON handoffs
    FOR EACH ROW EXECUTE FUNCTION notify_inbox();
