-- Least privilege. Three roles:
--   the owner (whoever runs migrations: the embedded superuser, or DATABASE_URL's user) — schema, seeding,
--     ingestion, `mentor` admin commands; never the running service;
--   mentor_service — the service's pool logs in as it (LOGIN and its password are set at start-up by
--     store/db.py): not a superuser, owns nothing, may write only the conversation bookkeeping it keeps;
--   mentor_app — tenant traffic (`SET LOCAL ROLE mentor_app` with app.user_id set): row-level security
--     decides every row, and it holds only the grants the agent tools and the REST API need.
-- An injection that manages to RESET ROLE inside a tenant transaction lands in mentor_service, which has
-- no access at all to profiles, revenue, payments or orders.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        CREATE ROLE mentor_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    EXECUTE 'GRANT mentor_app TO mentor_service';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role mentor_service (the owner lacks CREATEROLE); the service will use the owner';
END $$;

-- mentor_app: start from nothing, then grant what the tools and the REST API use.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM mentor_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM mentor_app;
GRANT SELECT ON subscription_plans, skills, clients, projects, project_skills, project_milestones, gigs,
    market_rates, corpora, documents, chunks TO mentor_app;
GRANT SELECT ON users, freelancer_profiles, freelancer_skills, orders, payments, client_projects,
    learning_sessions, revenue_attributions, skill_progress TO mentor_app;
GRANT SELECT, INSERT, UPDATE ON proposals TO mentor_app;             -- saved drafts (a revision updates its own)
GRANT SELECT, INSERT ON support_tickets TO mentor_app;               -- handoffs (visitors: insert only, by policy)
GRANT SELECT ON conversations, messages, conversation_events, tool_calls, citations TO mentor_app;
GRANT SELECT, INSERT ON feedback TO mentor_app;
GRANT USAGE ON SEQUENCE proposals_id_seq, support_tickets_id_seq, feedback_id_seq TO mentor_app;

-- mentor_service: the conversation bookkeeping (messages, events, seq numbers), widget sites, and reading
-- users for authentication. Nothing else.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        GRANT USAGE ON SCHEMA public TO mentor_service;
        GRANT SELECT, INSERT, UPDATE ON conversations, messages, conversation_events, tool_calls, citations,
            support_tickets TO mentor_service;
        GRANT SELECT ON users, sites, corpora, documents, chunks, subscription_plans TO mentor_service;
        GRANT USAGE ON SEQUENCE messages_id_seq, tool_calls_id_seq, citations_id_seq, support_tickets_id_seq
            TO mentor_service;
        GRANT EXECUTE ON FUNCTION app_user_id() TO mentor_service;
    END IF;
END $$;

-- Policies for the service role on the tables it keeps (its own bookkeeping spans all callers).
DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['conversations', 'messages', 'conversation_events', 'tool_calls', 'citations',
                             'support_tickets', 'users'] LOOP
        EXECUTE format('CREATE POLICY %I ON %I TO mentor_service USING (true) WITH CHECK (true)',
                       t || '_service', t);
    END LOOP;
END $$;

-- Row-level security is forced on every per-user table, so it holds for the tables' owner too; the
-- owner (migrations, seeding, `mentor` admin commands) is given an explicit policy instead of a silent
-- bypass. WITH CHECK on every writable policy.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'freelancer_profiles', 'freelancer_skills', 'payments', 'orders',
                             'client_projects', 'learning_sessions', 'revenue_attributions', 'skill_progress',
                             'proposals', 'conversations', 'messages', 'conversation_events', 'tool_calls',
                             'citations', 'feedback', 'support_tickets', 'clients', 'gigs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I TO %I USING (true) WITH CHECK (true)', t || '_owner_all', t,
                       current_user);
    END LOOP;
END $$;

DROP POLICY users_self ON users;
CREATE POLICY users_self ON users USING (id = app_user_id()) WITH CHECK (id = app_user_id());

-- Clients and gigs: public directory entries (anyone may read), written only by their owner.
CREATE POLICY clients_read ON clients FOR SELECT USING (true);
CREATE POLICY clients_write ON clients FOR INSERT WITH CHECK (user_id = app_user_id());
CREATE POLICY clients_update ON clients FOR UPDATE USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id());
CREATE POLICY gigs_read ON gigs FOR SELECT USING (active OR freelancer_id = app_user_id());
CREATE POLICY gigs_write ON gigs FOR INSERT WITH CHECK (freelancer_id = app_user_id());
CREATE POLICY gigs_update ON gigs FOR UPDATE USING (freelancer_id = app_user_id())
    WITH CHECK (freelancer_id = app_user_id());

-- A draft is private to its author; the project's client sees a proposal only once it is submitted.
DROP POLICY proposals_read ON proposals;
CREATE POLICY proposals_read ON proposals FOR SELECT USING (
    freelancer_id = app_user_id()
    OR (status <> 'draft' AND EXISTS (SELECT 1 FROM projects p JOIN clients c ON c.id = p.client_id
                                      WHERE p.id = proposals.project_id AND c.user_id = app_user_id())));

-- Orders are written by the platform (seeded here), never through the application role.
DROP POLICY orders_parties ON orders;
CREATE POLICY orders_parties ON orders FOR SELECT USING (buyer_id = app_user_id() OR freelancer_id = app_user_id());
