-- State Manager: associations (versioned), the commands they started, and
-- compliance per association, node and resource.
CREATE TABLE associations (
    name                     TEXT PRIMARY KEY,
    version                  INTEGER NOT NULL,
    spec                     TEXT NOT NULL,
    author                   TEXT NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    last_scheduled_at        INTEGER,
    applied_document_version INTEGER
);

CREATE TABLE association_versions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE association_runs (
    command_id  TEXT PRIMARY KEY,
    association TEXT NOT NULL,
    version     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    node_id     TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX association_runs_by_association ON association_runs (association, created_at);

CREATE TABLE compliance_nodes (
    association TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    node_name   TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    command_id  TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (association, node_id)
);
CREATE INDEX compliance_nodes_by_node ON compliance_nodes (node_id);

CREATE TABLE compliance_resources (
    association TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    resource    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    changes     TEXT NOT NULL,
    diff        TEXT,
    message     TEXT,
    command_id  TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (association, node_id, resource)
);
