-- Web console sign-ins. The browser holds a random session id, and only its
-- SHA-256 is stored, so a leaked database opens no session. The API token
-- the user signed in with is sealed by the key ring: each page resolves the
-- principal from it exactly as the API does, so a revoked or expired token
-- stops its sessions at once. csrf_secret is what every form must echo.
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    sealed_token BLOB NOT NULL,
    csrf_secret  TEXT NOT NULL,
    actor        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
