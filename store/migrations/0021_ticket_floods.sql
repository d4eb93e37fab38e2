-- A flood of new anonymous visitors from one network address, or at one site, is refused a new ticket
-- before it reaches the inbox (each fresh visitor id would otherwise have its own hourly allowance). The
-- address a widget conversation was opened from is kept for that (and only on visitors' conversations).
ALTER TABLE conversations ADD COLUMN client_address text;

CREATE FUNCTION recent_visitor_tickets(conv uuid) RETURNS TABLE (same_address integer, same_site integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
        SELECT count(*) FILTER (WHERE c.client_address = mine.client_address)::integer,
               count(*) FILTER (WHERE c.site_id = mine.site_id)::integer
        FROM support_tickets t JOIN conversations c ON c.id = t.conversation_id
        JOIN conversations mine ON mine.id = conv
        WHERE t.created_at > now() - interval '1 hour' AND mine.user_id IS NULL AND c.user_id IS NULL
          AND (c.client_address = mine.client_address OR c.site_id = mine.site_id)
    $$;
REVOKE ALL ON FUNCTION recent_visitor_tickets(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recent_visitor_tickets(uuid) TO mentor_app;
