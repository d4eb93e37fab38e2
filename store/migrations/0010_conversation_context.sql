-- A conversation remembers what it is about: the marketplace project (the proposal writer's follow-ups,
-- Sarah's client role-play) and the mode, so a follow-up without them continues the same work.
ALTER TABLE conversations ADD COLUMN project_id bigint CHECK (project_id > 0);
ALTER TABLE conversations ADD COLUMN mode text NOT NULL DEFAULT 'chat' CHECK (mode IN ('chat', 'simulate_client'));
-- how a widget visitor asked to be reached after a handoff (never shown to other visitors)
ALTER TABLE support_tickets ADD COLUMN contact_email text CHECK (contact_email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$');
