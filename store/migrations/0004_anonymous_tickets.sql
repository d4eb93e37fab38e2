-- Widget visitors (no app.user_id) may open a support ticket, which only staff can read back.
CREATE POLICY support_tickets_anonymous_insert ON support_tickets FOR INSERT
    WITH CHECK (user_id IS NULL AND app_user_id() IS NULL);
