-- Logs nodes ship: one row per line, in the order received (id), with the
-- level's rank (0 critical .. 4 debug, 5 none) for "this level or worse"
-- queries, and the batch seqs recently stored per node (a resent batch is
-- stored once).
CREATE TABLE log_entries (
    id         INTEGER PRIMARY KEY,
    node_id    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT,
    level_rank INTEGER NOT NULL,
    message    TEXT NOT NULL,
    fields     TEXT NOT NULL
);
CREATE INDEX log_entries_by_time ON log_entries (at);
CREATE INDEX log_entries_by_node ON log_entries (node_id, at);

-- Per node, the seqs of its most recent batches (a JSON array, newest
-- last, bounded) and when it last sent one.
CREATE TABLE log_batches (
    node_id     TEXT PRIMARY KEY,
    seqs        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
