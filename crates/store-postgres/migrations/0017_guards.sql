-- Content guards (RATE-6). A guard belongs to an org and runs, with the org's other enabled
-- guards in `position` order, on what is posted there. `config` holds its settings as JSON
-- (terms, patterns, or a moderation endpoint's URL, timeout and fail mode), never an API key:
-- that is sealed at rest (DATA-3) in `guard_secrets`, one row per guard. The four counters
-- only ever move by `n = n + k`. `guard_flags` is the review queue: one open flag per
-- (message, guard) at most; a flag outlives its guard (`guard_name` remembers it).

CREATE TABLE guards (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    config TEXT NOT NULL,
    position INTEGER NOT NULL,
    enabled BOOLEAN NOT NULL,
    allowed_count BIGINT NOT NULL DEFAULT 0,
    flagged_count BIGINT NOT NULL DEFAULT 0,
    blocked_count BIGINT NOT NULL DEFAULT 0,
    error_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT guards_pkey PRIMARY KEY (id),
    CONSTRAINT guards_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT guards_kind_check CHECK (kind IN ('blocklist', 'regex', 'moderation_endpoint', 'agent')),
    CONSTRAINT guards_mode_check CHECK (mode IN ('block', 'flag')),
    CONSTRAINT guards_config_check CHECK (jsonb_typeof(config::jsonb) = 'object')
);
CREATE INDEX guards_org_idx ON guards (org_id, position, id);

CREATE TABLE guard_secrets (
    guard_id UUID NOT NULL,
    secret_key_id INTEGER NOT NULL,
    secret_nonce BYTEA NOT NULL,
    secret_ciphertext BYTEA NOT NULL,
    CONSTRAINT guard_secrets_pkey PRIMARY KEY (guard_id),
    CONSTRAINT guard_secrets_guard_fkey FOREIGN KEY (guard_id) REFERENCES guards (id) ON DELETE CASCADE
);
CREATE INDEX guard_secrets_secret_key_idx ON guard_secrets (secret_key_id);

CREATE TABLE guard_flags (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    guard_id UUID,
    guard_name TEXT NOT NULL,
    message_id UUID NOT NULL,
    conversation_id UUID NOT NULL,
    author_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by UUID,
    resolution TEXT,
    CONSTRAINT guard_flags_pkey PRIMARY KEY (id),
    CONSTRAINT guard_flags_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT guard_flags_guard_fkey FOREIGN KEY (guard_id) REFERENCES guards (id) ON DELETE SET NULL,
    CONSTRAINT guard_flags_message_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT guard_flags_conversation_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT guard_flags_author_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT guard_flags_resolved_by_fkey FOREIGN KEY (resolved_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT guard_flags_resolution_check CHECK (resolution IN ('dismissed', 'removed'))
);
CREATE INDEX guard_flags_queue_idx ON guard_flags (org_id, resolved_at, id);
CREATE INDEX guard_flags_message_idx ON guard_flags (message_id);
CREATE UNIQUE INDEX guard_flags_open_unique ON guard_flags (message_id, guard_id) WHERE resolved_at IS NULL;
