-- Delivery claims with an owner and an expiry, so that several server
-- processes can share the outbox: a claim belongs to the process that took
-- it until it expires, and an expired claim may be taken again.
ALTER TABLE event_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE event_deliveries ADD COLUMN claim_expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX event_deliveries_claim_expiry ON event_deliveries (claim_expires_at)
    WHERE claimed = 1;
