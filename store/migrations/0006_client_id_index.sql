-- Re-sent frames are matched by client id (also across a caller's conversations).
CREATE INDEX messages_client_id_idx ON messages (client_id) WHERE client_id IS NOT NULL;
