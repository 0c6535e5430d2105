-- AUTH-5: an attempt is counted before it is checked (one conditional upsert), and given back
-- when it was not a failure; the reservation carries the counter's previous last failure out
-- through this column so a refund can restore it. `pending` counts the attempts reserved and not
-- yet settled (checked and failed, or given back): an attempt refused while others are in flight
-- waits briefly for them instead of being refused at once.
ALTER TABLE login_failures ADD COLUMN prev_failure_at TEXT;
ALTER TABLE login_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;

-- DATA-5: alerts every node's readiness check reports until an admin clears them (e.g. the
-- audit chain did not verify before pruning: `audit` = `chain_mismatch`).
CREATE TABLE health_alerts (
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    CONSTRAINT health_alerts_pkey PRIMARY KEY (name)
);

-- DATA-6: the per-org placeholder author that anonymised messages move to on erasure.
CREATE TABLE org_placeholders (
    org_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    CONSTRAINT org_placeholders_pkey PRIMARY KEY (org_id),
    CONSTRAINT org_placeholders_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT org_placeholders_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
