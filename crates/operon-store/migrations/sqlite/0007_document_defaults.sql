-- The default version of each document: what runs when no version is named
-- (commands, rule targets, runbook tasks). The first version is the default;
-- a new version becomes the default only when someone with
-- documents:UpdateDefaultVersion says so.

CREATE TABLE document_defaults (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);

-- Documents stored before defaults existed keep running what they ran: their
-- latest version.
INSERT INTO document_defaults (name, version)
SELECT name, MAX(version) FROM documents GROUP BY name;
