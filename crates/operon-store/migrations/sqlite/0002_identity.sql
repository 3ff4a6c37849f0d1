CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER
);

ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users (id);

ALTER TABLE api_tokens ADD COLUMN scopes TEXT;

CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE role_policies (
    role TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    policy TEXT NOT NULL REFERENCES policies (name),
    PRIMARY KEY (role, policy)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_by_actor ON audit_log (actor, seq);

CREATE INDEX audit_by_at ON audit_log (at)
