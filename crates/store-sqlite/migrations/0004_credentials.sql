-- Bots (AUTH-6) and API keys (AUTH-7). Secrets are stored only as HMAC-SHA256 hashes; each has an
-- id (what its gateway sockets go by) and a non-secret hint (its last four characters, which are
-- checksum). A rotation keeps the replaced secret as `previous_*` until `previous_expires_at`.
-- List columns hold JSON arrays of strings.

CREATE TABLE bots (
    id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    name TEXT NOT NULL,
    conversation_ids TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    token_id BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    token_hint TEXT NOT NULL,
    previous_token_id BLOB,
    previous_token_hash BLOB,
    previous_expires_at TEXT,
    CONSTRAINT bots_pkey PRIMARY KEY (id),
    CONSTRAINT bots_user_unique UNIQUE (user_id),
    CONSTRAINT bots_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT bots_previous_token_hash_unique UNIQUE (previous_token_hash),
    CONSTRAINT bots_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT bots_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT bots_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT bots_conversation_ids_check
        CHECK (conversation_ids IS NULL OR (json_valid(conversation_ids) AND json_type(conversation_ids) = 'array')),
    CONSTRAINT bots_previous_check CHECK ((previous_token_hash IS NULL) = (previous_token_id IS NULL)
        AND (previous_token_hash IS NULL) = (previous_expires_at IS NULL))
);
CREATE INDEX bots_org_idx ON bots (org_id, id);

CREATE TABLE api_keys (
    id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    conversation_ids TEXT,
    expires_at TEXT,
    allowed_ips TEXT,
    tier TEXT NOT NULL,
    last_used_at TEXT,
    last_used_ip TEXT,
    created_at TEXT NOT NULL,
    token_id BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    token_hint TEXT NOT NULL,
    previous_token_id BLOB,
    previous_token_hash BLOB,
    previous_expires_at TEXT,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT api_keys_previous_token_hash_unique UNIQUE (previous_token_hash),
    CONSTRAINT api_keys_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_tier_check CHECK (tier IN ('free', 'pro', 'team', 'enterprise')),
    CONSTRAINT api_keys_scopes_check CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    CONSTRAINT api_keys_conversation_ids_check
        CHECK (conversation_ids IS NULL OR (json_valid(conversation_ids) AND json_type(conversation_ids) = 'array')),
    CONSTRAINT api_keys_allowed_ips_check
        CHECK (allowed_ips IS NULL OR (json_valid(allowed_ips) AND json_type(allowed_ips) = 'array')),
    CONSTRAINT api_keys_previous_check CHECK ((previous_token_hash IS NULL) = (previous_token_id IS NULL)
        AND (previous_token_hash IS NULL) = (previous_expires_at IS NULL))
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, id);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);
