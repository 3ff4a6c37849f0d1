-- Files that follow parameters: a sync keeps a file on every targeted node
-- equal to the parameters under a path. Per node: what was sent and what
-- the agent reported applied (digests only, never the content).
CREATE TABLE param_syncs (
    name       TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    recursive  INTEGER NOT NULL,
    targets    TEXT NOT NULL,
    file       TEXT NOT NULL,
    format     TEXT NOT NULL,
    mode       INTEGER NOT NULL,
    owner      TEXT,
    grp        TEXT,
    on_change  TEXT,
    role       TEXT,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE param_sync_nodes (
    sync_name      TEXT NOT NULL REFERENCES param_syncs (name) ON DELETE CASCADE,
    node_id        TEXT NOT NULL,
    node_name      TEXT NOT NULL,
    status         TEXT NOT NULL,
    detail         TEXT,
    version_set    TEXT,
    sent_digest    TEXT,
    sent_at        INTEGER,
    applied_digest TEXT,
    applied_at     INTEGER,
    on_change_exit INTEGER,
    PRIMARY KEY (sync_name, node_id)
);
