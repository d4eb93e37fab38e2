-- Which worker process runs each streaming answer. A live worker holds a session advisory lock on its
-- id (server/hub.py); when a worker dies its lock is released, and any other worker closes that
-- worker's unfinished answers as interrupted (retryable) instead of leaving them "streaming" forever.
ALTER TABLE messages ADD COLUMN worker_id bigint;
CREATE INDEX messages_streaming_idx ON messages (conversation_id) WHERE status = 'streaming';
