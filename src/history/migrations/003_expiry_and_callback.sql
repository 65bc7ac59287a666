-- A message's TTL deadline and status-callback URL, as its Redis record holds
-- them, so GET /v1/messages/:id answers the same body from the archive.
ALTER TABLE messages ADD COLUMN expire_at timestamptz, ADD COLUMN callback_url text;
