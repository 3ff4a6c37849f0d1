CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE enroll_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    tags TEXT NOT NULL,
    uses_allowed INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    credential_hash TEXT NOT NULL UNIQUE,
    tags TEXT NOT NULL,
    inventory TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    last_seen INTEGER,
    revoked_at INTEGER
);

CREATE TABLE documents (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    document_name TEXT NOT NULL,
    document_version INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    request TEXT NOT NULL,
    steps TEXT NOT NULL,
    max_concurrency TEXT NOT NULL,
    max_errors TEXT NOT NULL,
    timeout_secs INTEGER NOT NULL,
    delivery_timeout_secs INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT NOT NULL
);

CREATE INDEX commands_by_status ON commands (status);

CREATE TABLE invocations (
    command_id TEXT NOT NULL REFERENCES commands (id),
    node_id TEXT NOT NULL,
    node_name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_detail TEXT,
    exit_code INTEGER,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    stdout_truncated INTEGER NOT NULL,
    stderr_truncated INTEGER NOT NULL,
    dispatched_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    steps TEXT NOT NULL,
    PRIMARY KEY (command_id, node_id)
);

CREATE INDEX invocations_by_node_status ON invocations (node_id, status)
