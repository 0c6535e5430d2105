-- Bots (AUTH-6) and API keys (AUTH-7). Secrets are stored only as HMAC-SHA256 hashes; each has an
-- id (what its gateway sockets go by) and a non-secret hint (its last four characters, which are
-- checksum). A rotation keeps the replaced secret as `previous_*` until `previous_expires_at`.
-- List columns hold JSON arrays of strings, kept as TEXT so both backends store and read the
-- same thing.

CREATE TABLE bots (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    user_id UUID NOT NULL,
    name TEXT NOT NULL,
    conversation_ids TEXT,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    token_id UUID NOT NULL,
    token_hash BYTEA NOT NULL,
    token_hint TEXT NOT NULL,
    previous_token_id UUID,
    previous_token_hash BYTEA,
    previous_expires_at TIMESTAMPTZ,
    CONSTRAINT bots_pkey PRIMARY KEY (id),
    CONSTRAINT bots_user_unique UNIQUE (user_id),
    CONSTRAINT bots_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT bots_previous_token_hash_unique UNIQUE (previous_token_hash),
    CONSTRAINT bots_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT bots_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT bots_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT bots_conversation_ids_check
        CHECK (conversation_ids IS NULL OR jsonb_typeof(conversation_ids::jsonb) = 'array'),
    CONSTRAINT bots_previous_check CHECK ((previous_token_hash IS NULL) = (previous_token_id IS NULL)
        AND (previous_token_hash IS NULL) = (previous_expires_at IS NULL))
);
CREATE INDEX bots_org_idx ON bots (org_id, id);

CREATE TABLE api_keys (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    org_id UUID NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    conversation_ids TEXT,
    expires_at TIMESTAMPTZ,
    allowed_ips TEXT,
    tier TEXT NOT NULL,
    last_used_at TIMESTAMPTZ,
    last_used_ip TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    token_id UUID NOT NULL,
    token_hash BYTEA NOT NULL,
    token_hint TEXT NOT NULL,
    previous_token_id UUID,
    previous_token_hash BYTEA,
    previous_expires_at TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT api_keys_previous_token_hash_unique UNIQUE (previous_token_hash),
    CONSTRAINT api_keys_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_tier_check CHECK (tier IN ('free', 'pro', 'team', 'enterprise')),
    CONSTRAINT api_keys_scopes_check CHECK (jsonb_typeof(scopes::jsonb) = 'array'),
    CONSTRAINT api_keys_conversation_ids_check
        CHECK (conversation_ids IS NULL OR jsonb_typeof(conversation_ids::jsonb) = 'array'),
    CONSTRAINT api_keys_allowed_ips_check
        CHECK (allowed_ips IS NULL OR jsonb_typeof(allowed_ips::jsonb) = 'array'),
    CONSTRAINT api_keys_previous_check CHECK ((previous_token_hash IS NULL) = (previous_token_id IS NULL)
        AND (previous_token_hash IS NULL) = (previous_expires_at IS NULL))
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, id);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);
