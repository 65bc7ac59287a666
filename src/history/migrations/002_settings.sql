-- Values the archive keeps for every process that uses it: the key of the
-- phone-number hashes when HISTORY_PHONE_KEY is not set (made once, by the
-- first process to ask, and the same for every process after it).
CREATE TABLE history_settings (
  name  text PRIMARY KEY,
  value text NOT NULL
);
