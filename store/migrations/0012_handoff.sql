-- Human handoff: support agents and admins, and the inbox of conversations handed to a person.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('freelancer', 'client', 'agent', 'admin'));

-- an agent's reply is a message of its own role in the customer's conversation (the customer owns the
-- row, so their history shows it); author_id says which agent wrote it
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool', 'agent'));
ALTER TABLE messages ADD COLUMN author_id bigint REFERENCES users(id);

CREATE TABLE handoffs (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    ticket_id        bigint REFERENCES support_tickets(id),
    reason           text NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'resolved')),
    agent_id         bigint REFERENCES users(id),
    outcome          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    first_reply_at   timestamptz,
    resolved_at      timestamptz,
    CHECK ((status = 'claimed') = (agent_id IS NOT NULL) OR status = 'resolved')
);
CREATE INDEX handoffs_queue_idx ON handoffs (status, created_at);

-- A ticket opened in a conversation (the support bot's escalation, a visitor's "talk to a person") puts
-- that conversation in the inbox; a new ticket in a resolved conversation opens it again.
CREATE FUNCTION open_handoff() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
    AS $$
BEGIN
    IF NEW.conversation_id IS NOT NULL THEN
        INSERT INTO handoffs (conversation_id, ticket_id, reason) VALUES (NEW.conversation_id, NEW.id, NEW.reason)
        ON CONFLICT (conversation_id) DO UPDATE
            SET ticket_id = EXCLUDED.ticket_id, reason = EXCLUDED.reason,
                status = CASE WHEN handoffs.status = 'resolved' THEN 'open' ELSE handoffs.status END,
                agent_id = CASE WHEN handoffs.status = 'resolved' THEN NULL ELSE handoffs.agent_id END,
                created_at = CASE WHEN handoffs.status = 'resolved' THEN now() ELSE handoffs.created_at END;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER support_tickets_handoff AFTER INSERT ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION open_handoff();

-- The caller's role, for policies (SECURITY DEFINER: it reads the users row whatever RLS shows).
CREATE FUNCTION app_user_role() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$ SELECT role FROM users WHERE id = app_user_id() $$;

-- May the caller, as support staff, read this conversation? Admins: any. Agents: one waiting in the
-- inbox, or one they own (claimed, or resolved by them). Everyone else: no (their own rows have their
-- own policies).
CREATE FUNCTION staff_may_read(conversation uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $$
    SELECT CASE app_user_role()
        WHEN 'admin' THEN true
        WHEN 'agent' THEN EXISTS (SELECT 1 FROM handoffs h WHERE h.conversation_id = conversation
                                   AND (h.status = 'open' OR h.agent_id = app_user_id()))
        ELSE false END $$;

GRANT EXECUTE ON FUNCTION app_user_role(), staff_may_read(uuid) TO mentor_app;

ALTER TABLE handoffs ENABLE ROW LEVEL SECURITY;
ALTER TABLE handoffs FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY handoffs_owner_all ON handoffs TO %I USING (true) WITH CHECK (true)', current_user);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        GRANT SELECT, INSERT, UPDATE ON handoffs TO mentor_service;
        CREATE POLICY handoffs_service ON handoffs TO mentor_service USING (true) WITH CHECK (true);
        GRANT EXECUTE ON FUNCTION app_user_role(), staff_may_read(uuid) TO mentor_service;
    END IF;
END $$;
GRANT SELECT ON handoffs TO mentor_app;
CREATE POLICY handoffs_staff ON handoffs FOR SELECT TO mentor_app USING (staff_may_read(conversation_id));

-- Staff read what a handoff shows them: the conversation, its messages and events, tool calls,
-- citations and the ticket. Read only: their writes go through the service, which checks the handoff.
CREATE POLICY conversations_staff ON conversations FOR SELECT TO mentor_app USING (staff_may_read(id));
CREATE POLICY messages_staff ON messages FOR SELECT TO mentor_app USING (staff_may_read(conversation_id));
CREATE POLICY conversation_events_staff ON conversation_events FOR SELECT TO mentor_app
    USING (staff_may_read(conversation_id));
CREATE POLICY tool_calls_staff ON tool_calls FOR SELECT TO mentor_app USING (staff_may_read(conversation_id));
CREATE POLICY citations_staff ON citations FOR SELECT TO mentor_app USING (staff_may_read(conversation_id));
CREATE POLICY support_tickets_staff ON support_tickets FOR SELECT TO mentor_app
    USING (conversation_id IS NOT NULL AND staff_may_read(conversation_id));
