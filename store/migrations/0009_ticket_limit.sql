-- How many tickets the same visitor (or signed-in user) opened in the last hour, across their
-- conversations: the support tool refuses a fourth, so one client cannot flood the support queue.
-- SECURITY DEFINER because under RLS an anonymous visitor may insert a ticket but never read one.
CREATE FUNCTION recent_ticket_count(conv uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
        SELECT count(*)::integer
        FROM support_tickets t JOIN conversations c ON c.id = t.conversation_id
        JOIN conversations mine ON mine.id = conv
        WHERE t.created_at > now() - interval '1 hour'
          AND (c.id = conv OR (mine.visitor_id IS NOT NULL AND c.visitor_id = mine.visitor_id)
               OR (mine.user_id IS NOT NULL AND c.user_id = mine.user_id))
    $$;
REVOKE ALL ON FUNCTION recent_ticket_count(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recent_ticket_count(uuid) TO mentor_app;
