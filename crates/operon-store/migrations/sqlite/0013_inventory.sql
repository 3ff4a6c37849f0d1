-- Inventory: what each node reported, per kind (packages, services, ports,
-- custom:<name>...). One row per kind with the digest of the set held
-- (agents send deltas against it), one row per item.
CREATE TABLE inventory_sets (
    node_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, kind)
);

CREATE TABLE inventory_items (
    node_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    attributes TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, kind, key)
);

-- Fleet-wide queries narrow by kind and, often, the item's key.
CREATE INDEX inventory_items_by_kind_key ON inventory_items (kind, key);
