-- Conclave's own OAuth 2.1 authorization server for MCP clients (MCP-2). Every token, code and
-- client secret is stored only as its HMAC-SHA256 keyed hash, like sessions and API keys.
-- `client_id` is the text a client presents: a registered client's id, or the URL of its Client
-- ID Metadata Document; `registered_client` links the rows of a registered client, so deleting
-- it removes its pending requests, codes and grants (and with them every token).
-- A grant is one consent: a family of access and refresh tokens. Revoking it (`revoked_at`)
-- deletes its tokens; a code or rotated refresh token presented again revokes it too.
-- List columns hold JSON arrays of strings.

CREATE TABLE oauth_clients (
    id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    public INTEGER NOT NULL,
    secret_hash BLOB,
    secret_hint TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    CONSTRAINT oauth_clients_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_clients_secret_hash_unique UNIQUE (secret_hash),
    CONSTRAINT oauth_clients_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_clients_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT oauth_clients_redirect_uris_check CHECK (json_valid(redirect_uris) AND json_type(redirect_uris) = 'array'),
    CONSTRAINT oauth_clients_secret_check CHECK ((public = 1) = (secret_hash IS NULL)
        AND (secret_hash IS NULL) = (secret_hint IS NULL))
);
CREATE INDEX oauth_clients_org_idx ON oauth_clients (org_id, id);

CREATE TABLE oauth_requests (
    id BLOB NOT NULL,
    client_id TEXT NOT NULL,
    registered_client BLOB,
    client_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    state TEXT,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CONSTRAINT oauth_requests_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_requests_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_requests_scopes_check CHECK (json_valid(scopes) AND json_type(scopes) = 'array')
);
CREATE INDEX oauth_requests_expires_idx ON oauth_requests (expires_at);

CREATE TABLE oauth_grants (
    id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    client_id TEXT NOT NULL,
    registered_client BLOB,
    client_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CONSTRAINT oauth_grants_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_grants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_scopes_check CHECK (json_valid(scopes) AND json_type(scopes) = 'array')
);
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id, id);
CREATE INDEX oauth_grants_org_idx ON oauth_grants (org_id, id);

CREATE TABLE oauth_codes (
    id BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    client_id TEXT NOT NULL,
    registered_client BLOB,
    client_name TEXT NOT NULL,
    user_id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    grant_id BLOB,
    CONSTRAINT oauth_codes_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_codes_code_hash_unique UNIQUE (code_hash),
    CONSTRAINT oauth_codes_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE SET NULL,
    CONSTRAINT oauth_codes_scopes_check CHECK (json_valid(scopes) AND json_type(scopes) = 'array')
);
CREATE INDEX oauth_codes_expires_idx ON oauth_codes (expires_at);

CREATE TABLE oauth_access_tokens (
    id BLOB NOT NULL,
    grant_id BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CONSTRAINT oauth_access_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_access_tokens_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT oauth_access_tokens_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
);
CREATE INDEX oauth_access_tokens_grant_idx ON oauth_access_tokens (grant_id);

CREATE TABLE oauth_refresh_tokens (
    id BLOB NOT NULL,
    grant_id BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT oauth_refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_refresh_tokens_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT oauth_refresh_tokens_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
);
CREATE INDEX oauth_refresh_tokens_grant_idx ON oauth_refresh_tokens (grant_id);
