-- Verified identity in the widget: a site signs its own signed-in users' tokens (HS256) with this
-- secret, shown once by `mentor sites add`. Sites registered before have none (anonymous visitors only).
ALTER TABLE sites ADD COLUMN secret text CHECK (secret IS NULL OR length(secret) >= 32);
