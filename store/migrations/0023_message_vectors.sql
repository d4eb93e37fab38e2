-- The operator's reports compare customers' messages by meaning (re-asks, returns, knowledge gaps): each
-- message is embedded once and kept here, so a report over many days embeds only what is new.
CREATE TABLE message_vectors (
    message_id  bigint PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    embedding   vector(384) NOT NULL
);
ALTER TABLE message_vectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_vectors FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY message_vectors_owner ON message_vectors TO %I USING (true) WITH CHECK (true)',
                   current_user);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mentor_service') THEN
        GRANT SELECT, INSERT ON message_vectors TO mentor_service;
        CREATE POLICY message_vectors_service ON message_vectors TO mentor_service USING (true) WITH CHECK (true);
    END IF;
END $$;
