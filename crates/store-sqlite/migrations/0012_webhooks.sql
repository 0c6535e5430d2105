-- Outgoing webhooks (HOOK-1, HOOK-2). An endpoint belongs to an org and, when
-- `conversation_id` is set, hears only that conversation. Its signing secrets are sealed at rest
-- (DATA-3) in `webhook_secrets`: one row per secret, the newest signs alone once the rotation
-- overlap (`expires_at` of the older ones) ends. `webhook_deliveries` is the delivery queue and
-- its log: one row per (endpoint, event), claimed with a lease by one node at a time.
-- `events` holds a JSON array of event names.

CREATE TABLE webhooks (
    id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    conversation_id BLOB,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    consecutive_failures INTEGER NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT webhooks_pkey PRIMARY KEY (id),
    CONSTRAINT webhooks_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT webhooks_conversation_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT webhooks_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT webhooks_events_check CHECK (json_valid(events) AND json_type(events) = 'array'),
    CONSTRAINT webhooks_failures_check CHECK (consecutive_failures >= 0)
);
CREATE INDEX webhooks_org_idx ON webhooks (org_id, id);

CREATE TABLE webhook_secrets (
    id BLOB NOT NULL,
    webhook_id BLOB NOT NULL,
    hint TEXT NOT NULL,
    secret_key_id INTEGER NOT NULL,
    secret_nonce BLOB NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    CONSTRAINT webhook_secrets_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_secrets_webhook_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE
);
CREATE INDEX webhook_secrets_webhook_idx ON webhook_secrets (webhook_id, id);
CREATE INDEX webhook_secrets_secret_key_idx ON webhook_secrets (secret_key_id);

CREATE TABLE webhook_deliveries (
    id BLOB NOT NULL,
    webhook_id BLOB NOT NULL,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    latency_ms INTEGER,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_event_unique UNIQUE (webhook_id, event_id),
    CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT webhook_deliveries_attempts_check CHECK (attempts >= 0)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
