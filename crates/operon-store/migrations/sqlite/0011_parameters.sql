-- Parameter Store: parameters, their versions (values in clear for String and
-- StringList, sealed envelopes for SecureString), labels on versions, tags,
-- and when the parameter's policies were last evaluated.
CREATE TABLE parameters (
    name              TEXT PRIMARY KEY,
    latest_version    INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    policy_checked_at INTEGER
);

CREATE TABLE parameter_versions (
    name            TEXT NOT NULL REFERENCES parameters (name) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    type            TEXT NOT NULL,
    value           TEXT,
    sealed          BLOB,
    key_id          TEXT,
    description     TEXT,
    allowed_pattern TEXT,
    tier            TEXT NOT NULL,
    data_type       TEXT NOT NULL,
    policies        TEXT,
    modified_at     INTEGER NOT NULL,
    modified_by     TEXT NOT NULL,
    PRIMARY KEY (name, version),
    CHECK ((value IS NULL) <> (sealed IS NULL))
);

CREATE TABLE parameter_labels (
    name    TEXT NOT NULL REFERENCES parameters (name) ON DELETE CASCADE,
    label   TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, label),
    FOREIGN KEY (name, version) REFERENCES parameter_versions (name, version) ON DELETE CASCADE
);
CREATE INDEX parameter_labels_version ON parameter_labels (name, version);

CREATE TABLE parameter_tags (
    name  TEXT NOT NULL REFERENCES parameters (name) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

-- AWS-style access keys for SigV4-signed calls: the secret is sealed (HMAC
-- needs the key itself), under the server's key ring.
CREATE TABLE access_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    sealed_secret BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX access_keys_user ON access_keys (user_id);
