-- Run-as: what a rule's targets and a workflow's tasks act as.
--
-- A rule remembers who put it last (its author), and a workflow version may
-- name a role. Effects are authorized when they happen, as the target's or the
-- version's role, or else as the author.
ALTER TABLE event_rules ADD COLUMN author TEXT;

-- Rules put before authorship was recorded take the principal the audit
-- trail names for their last successful put. A rule the trail does not name
-- keeps NULL, and its effects are refused until it is put again.
UPDATE event_rules SET author = (
    SELECT actor FROM audit_log
    WHERE action = 'rules:Put'
      AND resource = 'rule/' || event_rules.name
      AND outcome = 'allowed'
    ORDER BY seq DESC LIMIT 1
);

ALTER TABLE workflow_versions ADD COLUMN role TEXT;

-- The rules that led to an execution (oldest first), for the loop guard.
ALTER TABLE executions ADD COLUMN causation TEXT;
