-- Health checks and log watchers (monitors): definitions pushed to the
-- nodes their targets select. `spec` is the service's JSON of the check or
-- watcher (without its name), `targets` a JSON array of target strings.
CREATE TABLE monitors (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    targets    TEXT NOT NULL,
    author     TEXT NOT NULL,
    role       TEXT,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
