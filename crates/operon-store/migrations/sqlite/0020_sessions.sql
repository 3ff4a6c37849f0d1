-- Sessions: a terminal, a command with a terminal, or port forwarding on a
-- node, relayed by one server process. touched_at is refreshed by the
-- relaying process while the session lives, so a session whose process
-- died is found and ended by any server.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    node_id            TEXT NOT NULL,
    node_name          TEXT NOT NULL,
    kind               TEXT NOT NULL,
    run_as             TEXT,
    command            TEXT,
    remote             TEXT,
    started_by         TEXT NOT NULL,
    started_at         INTEGER NOT NULL,
    touched_at         INTEGER NOT NULL,
    idle_timeout_secs  INTEGER NOT NULL,
    max_duration_secs  INTEGER NOT NULL,
    status             TEXT NOT NULL,
    ended_at           INTEGER,
    end_reason         TEXT,
    exit_code          INTEGER,
    terminate_by       TEXT,
    recording_sha256   TEXT,
    recording_bytes    INTEGER
);
CREATE INDEX sessions_by_start ON sessions (started_at);
CREATE INDEX sessions_active ON sessions (status, touched_at);

-- A session's recording: asciicast v2 text, cut in chunks, each a gzip
-- member sealed with the key ring (so a crash loses at most the last
-- chunk, and the chunks in order decompress to the recording).
CREATE TABLE session_recording_chunks (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    sealed     BLOB NOT NULL,
    PRIMARY KEY (session_id, seq)
);
