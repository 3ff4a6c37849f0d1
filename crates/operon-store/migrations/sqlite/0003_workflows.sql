CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    latest_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);

CREATE TABLE workflow_versions (
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (workflow, version)
);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    engine TEXT NOT NULL,
    parent_token TEXT,
    started_by TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    stopped_at INTEGER,
    updated_at INTEGER NOT NULL,
    redrive_count INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workflow, name)
);

CREATE INDEX executions_status ON executions (status, started_at);

CREATE TABLE execution_history (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE workflow_timers (
    execution_id TEXT NOT NULL,
    timer_id INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    PRIMARY KEY (execution_id, timer_id)
);

CREATE TABLE workflow_tasks (
    token TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    state TEXT NOT NULL,
    resource TEXT NOT NULL,
    input TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX workflow_tasks_execution ON workflow_tasks (execution_id);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    approvers TEXT NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    comment TEXT,
    created_at INTEGER NOT NULL,
    decided_at INTEGER
);

CREATE INDEX approvals_status ON approvals (status, created_at)
