-- The event bus: buses, events in the EventBridge envelope, rules with their
-- targets, the delivery outbox, dead letters, inbound webhooks, archives and
-- replays.
CREATE TABLE event_buses (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
INSERT INTO event_buses (name, created_at) VALUES ('default', 0);
-- Every accepted event. `seq` orders them and `body` is the envelope as JSON text.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    bus TEXT NOT NULL,
    body TEXT NOT NULL,
    ingested_at INTEGER NOT NULL
);
CREATE INDEX events_bus_time ON events (bus, ingested_at);
CREATE INDEX events_id ON events (id);
CREATE TABLE event_rules (
    name TEXT PRIMARY KEY,
    bus TEXT NOT NULL,
    description TEXT,
    pattern TEXT,
    schedule TEXT,
    timezone TEXT,
    enabled INTEGER NOT NULL,
    targets TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_fired_at INTEGER
);
-- The outbox: one row per (event, matching rule target) until delivered or
-- dead. `claimed` marks rows a worker of this process holds. It is cleared on
-- start, so a crash only delays them.
CREATE TABLE event_deliveries (
    id TEXT PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    target_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_error TEXT,
    claimed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX event_deliveries_due ON event_deliveries (claimed, next_attempt_at);
CREATE TABLE event_dead_letters (
    id TEXT PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    target_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE TABLE inbound_webhooks (
    name TEXT PRIMARY KEY,
    bus TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE event_archives (
    name TEXT PRIMARY KEY,
    bus TEXT NOT NULL,
    pattern TEXT,
    retention_days INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE event_replays (
    name TEXT PRIMARY KEY,
    archive TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    rules TEXT NOT NULL,
    state TEXT NOT NULL,
    events_replayed INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    error TEXT
)
