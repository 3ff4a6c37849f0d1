-- Incidents and auto-healing (issue 14).
--
-- An incident is one alarm episode of one instance: opened when the
-- instance goes to ALARM (in the same transaction as the state change),
-- recovered when it returns to OK, resolved by a person. Its timeline is
-- `incident_events`. A heal starts a runbook for incidents of the alarms it
-- names. Each attempt is a `heal_runs` row written before its execution
-- starts (the execution is named after the row, so a restart never starts
-- a second one for the same attempt).
CREATE TABLE incidents (
    id              TEXT PRIMARY KEY,
    alarm           TEXT NOT NULL,
    node_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    opened_at       INTEGER NOT NULL,
    recovered_at    INTEGER,
    escalated_at    INTEGER,
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by     TEXT,
    resolved_at     INTEGER
);
CREATE INDEX incidents_by_instance ON incidents (alarm, node_id, status);
CREATE INDEX incidents_by_time ON incidents (opened_at);

CREATE TABLE incident_events (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        TEXT,
    PRIMARY KEY (incident_id, seq)
);

CREATE TABLE heals (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE heal_runs (
    id           TEXT PRIMARY KEY,
    heal         TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    alarm        TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    execution_id TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    detail       TEXT,
    UNIQUE (heal, incident_id, attempt)
);
CREATE INDEX heal_runs_by_instance ON heal_runs (heal, alarm, node_id, started_at);
