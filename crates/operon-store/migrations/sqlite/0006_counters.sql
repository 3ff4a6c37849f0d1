-- Numbers that concurrent writers must never share are taken from one row,
-- with `UPDATE ... RETURNING` inside the transaction that uses them: the
-- update locks the row until commit, so the next writer sees the new value.
-- This holds on any engine with row locks, not only under SQLite's single
-- write lock.

-- Named counters. 'events': the last event sequence number ever used
-- (numbers are never reused, even after pruning).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value)
SELECT 'events', MAX(
    COALESCE((SELECT MAX(seq) FROM events), 0),
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)
);

-- The head of the audit chain: the last record's sequence number and hash
-- (0 and the genesis hash while the log is empty).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
SELECT 1,
    COALESCE((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), 0),
    COALESCE(
        (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000'
    );
