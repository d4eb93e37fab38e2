-- Row-level security keyed on the per-transaction setting app.user_id, enforced for mentor_app,
-- a role that cannot bypass RLS. Store code switches to it with SET LOCAL ROLE (see store/db.py).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_app') THEN
        CREATE ROLE mentor_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT mentor_app TO %I', current_user);
EXCEPTION WHEN others THEN
    NULL;  -- already a member, or a superuser (who may SET ROLE to anything)
END $$;

CREATE FUNCTION app_user_id() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::bigint $$;

GRANT USAGE ON SCHEMA public TO mentor_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mentor_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mentor_app;
GRANT EXECUTE ON FUNCTION app_user_id() TO mentor_app;

-- Public reference data is read-only for the application role.
REVOKE INSERT, UPDATE, DELETE ON subscription_plans, skills, clients, projects, project_skills,
    project_milestones, gigs, market_rates, corpora, documents, chunks FROM mentor_app;

-- Tables whose rows belong to one user: the owner column decides visibility.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_self ON users USING (id = app_user_id());

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('freelancer_profiles', 'user_id'),
        ('freelancer_skills', 'user_id'),
        ('payments', 'user_id'),
        ('client_projects', 'freelancer_id'),
        ('learning_sessions', 'freelancer_id'),
        ('revenue_attributions', 'freelancer_id'),
        ('skill_progress', 'freelancer_id'),
        ('conversations', 'user_id'),
        ('messages', 'user_id'),
        ('conversation_events', 'user_id'),
        ('tool_calls', 'user_id'),
        ('citations', 'user_id'),
        ('feedback', 'user_id'),
        ('support_tickets', 'user_id')
    ) AS v(tbl, col)
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.tbl);
        EXECUTE format('CREATE POLICY %I ON %I USING (%I = app_user_id()) WITH CHECK (%I = app_user_id())',
                       t.tbl || '_owner', t.tbl, t.col, t.col);
    END LOOP;
END $$;

-- Proposals: the freelancer who wrote it, or the client who owns the project, may read it;
-- only the freelancer may write it.
ALTER TABLE proposals ENABLE ROW LEVEL SECURITY;
CREATE POLICY proposals_read ON proposals FOR SELECT USING (
    freelancer_id = app_user_id()
    OR EXISTS (SELECT 1 FROM projects p JOIN clients c ON c.id = p.client_id
               WHERE p.id = proposals.project_id AND c.user_id = app_user_id()));
CREATE POLICY proposals_insert ON proposals FOR INSERT WITH CHECK (freelancer_id = app_user_id());
CREATE POLICY proposals_update ON proposals FOR UPDATE
    USING (freelancer_id = app_user_id()) WITH CHECK (freelancer_id = app_user_id());
CREATE POLICY proposals_delete ON proposals FOR DELETE USING (freelancer_id = app_user_id());

-- Orders: both sides of the deal see it.
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_parties ON orders USING (buyer_id = app_user_id() OR freelancer_id = app_user_id())
    WITH CHECK (buyer_id = app_user_id());
