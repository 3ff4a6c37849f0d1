-- Alarms (issue 14): definitions, the state of each alarm (one row per node
-- for an alarm templated over nodes, node_id '' for one that is not), and
-- the history of state changes. A history row is an outbox entry too: its
-- event is put on the bus after the row is committed and `published` set
-- once it is, so a crash in between puts it at the next start.
CREATE TABLE alarms (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE alarm_states (
    alarm       TEXT NOT NULL REFERENCES alarms (name) ON DELETE CASCADE,
    node_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    reason_data TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (alarm, node_id)
);

CREATE TABLE alarm_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm       TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    previous    TEXT,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    reason_data TEXT,
    published   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alarm_history_by_alarm ON alarm_history (alarm, id);
CREATE INDEX alarm_history_unpublished ON alarm_history (id) WHERE published = 0;
