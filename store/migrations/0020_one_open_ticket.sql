-- One open ticket per conversation. Before a ticket is opened, the support tool asks for the open one: in
-- this conversation (asking again adds to it), else the customer's newest open one elsewhere (past the
-- hourly limit their request joins it, rather than being refused). "Open" = its handoff is not resolved.
-- SECURITY DEFINER because under RLS an anonymous visitor may insert a ticket but never read one.
CREATE FUNCTION open_ticket_for(conv uuid) RETURNS TABLE (ticket_id bigint, same_conversation boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
        SELECT h.ticket_id, h.conversation_id = conv
        FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
        JOIN conversations mine ON mine.id = conv
        WHERE h.status <> 'resolved' AND h.ticket_id IS NOT NULL
          AND (c.id = conv OR (mine.visitor_id IS NOT NULL AND c.visitor_id = mine.visitor_id)
               OR (mine.user_id IS NOT NULL AND c.user_id = mine.user_id))
        ORDER BY h.conversation_id = conv DESC, h.created_at DESC
        LIMIT 1
    $$;
REVOKE ALL ON FUNCTION open_ticket_for(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION open_ticket_for(uuid) TO mentor_app;
