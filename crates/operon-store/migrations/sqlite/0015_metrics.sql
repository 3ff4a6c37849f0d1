-- Metrics: one series per node, name and dimensions, raw points and
-- 1-minute / 1-hour rollups kept for their own retention, and the batch seqs
-- recently stored per node (a resent batch is stored once).
CREATE TABLE metric_series (
    id         INTEGER PRIMARY KEY,
    node_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    unit       TEXT,
    last_at    INTEGER NOT NULL,
    last_value REAL NOT NULL,
    UNIQUE (node_id, name, dimensions)
);
CREATE INDEX metric_series_by_name ON metric_series (name);

CREATE TABLE metric_points (
    series_id INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;

CREATE TABLE metric_rollups_1m (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE metric_rollups_1h (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

-- Per node, the seqs of its most recent batches (a JSON array, newest
-- last, bounded) and when it last sent one.
CREATE TABLE metric_batches (
    node_id     TEXT PRIMARY KEY,
    seqs        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
