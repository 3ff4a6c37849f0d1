-- Node credentials besides the current one (nodes.credential_hash): a
-- rotation's new credential while the agent has not confirmed it yet
-- ('pending'), and credentials replaced by a rotation ('retired'), kept so
-- that an agent presenting one is refused with the reason. Hashes only.
CREATE TABLE node_credentials (
    credential_hash TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id),
    rotation_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'retired')),
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX node_credentials_node ON node_credentials (node_id, state)
