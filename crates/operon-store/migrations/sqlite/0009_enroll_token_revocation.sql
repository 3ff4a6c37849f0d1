-- An enrollment token can be revoked before it is used up or expires: from
-- then on it enrolls nothing. NULL while the token is live.
ALTER TABLE enroll_tokens ADD COLUMN revoked_at INTEGER;
