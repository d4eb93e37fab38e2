-- The operator's reports (issue 26) read every conversation's ratings beside its messages and events, as
-- the service role that already keeps those; and remember which knowledge-gap questions a "check again"
-- found answered by today's knowledge (a gap is fixed when all of its questions are).
CREATE TABLE knowledge_gap_checks (
    message_id     bigint PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    answered       boolean NOT NULL,
    best_source    text,
    best_distance  real,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE knowledge_gap_checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_gap_checks FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY gap_checks_owner ON knowledge_gap_checks TO %I USING (true) WITH CHECK (true)',
                   current_user);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        GRANT SELECT ON feedback, handoffs TO mentor_service;
        CREATE POLICY feedback_service_read ON feedback FOR SELECT TO mentor_service USING (true);
        GRANT SELECT, INSERT, UPDATE ON knowledge_gap_checks TO mentor_service;
        CREATE POLICY gap_checks_service ON knowledge_gap_checks TO mentor_service USING (true) WITH CHECK (true);
    END IF;
END $$;
