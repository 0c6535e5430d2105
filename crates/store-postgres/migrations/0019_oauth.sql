-- Conclave's own OAuth 2.1 authorization server for MCP clients (MCP-2). Every token, code and
-- client secret is stored only as its HMAC-SHA256 keyed hash, like sessions and API keys.
-- `client_id` is the text a client presents: a registered client's id, or the URL of its Client
-- ID Metadata Document; `registered_client` links the rows of a registered client, so deleting
-- it removes its pending requests, codes and grants (and with them every token).
-- A grant is one consent: a family of access and refresh tokens. Revoking it (`revoked_at`)
-- deletes its tokens; a code or rotated refresh token presented again revokes it too.
-- List columns hold JSON arrays of strings, kept as TEXT so both backends store and read the
-- same thing.

CREATE TABLE oauth_clients (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    public BOOLEAN NOT NULL,
    secret_hash BYTEA,
    secret_hint TEXT,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT oauth_clients_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_clients_secret_hash_unique UNIQUE (secret_hash),
    CONSTRAINT oauth_clients_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_clients_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT oauth_clients_redirect_uris_check CHECK (jsonb_typeof(redirect_uris::jsonb) = 'array'),
    CONSTRAINT oauth_clients_secret_check CHECK (public = (secret_hash IS NULL)
        AND (secret_hash IS NULL) = (secret_hint IS NULL))
);
CREATE INDEX oauth_clients_org_idx ON oauth_clients (org_id, id);

CREATE TABLE oauth_requests (
    id UUID NOT NULL,
    client_id TEXT NOT NULL,
    registered_client UUID,
    client_name TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    state TEXT,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT oauth_requests_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_requests_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_requests_scopes_check CHECK (jsonb_typeof(scopes::jsonb) = 'array')
);
CREATE INDEX oauth_requests_expires_idx ON oauth_requests (expires_at);

CREATE TABLE oauth_grants (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    org_id UUID NOT NULL,
    client_id TEXT NOT NULL,
    registered_client UUID,
    client_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT oauth_grants_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_grants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_grants_scopes_check CHECK (jsonb_typeof(scopes::jsonb) = 'array')
);
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id, id);
CREATE INDEX oauth_grants_org_idx ON oauth_grants (org_id, id);

CREATE TABLE oauth_codes (
    id UUID NOT NULL,
    code_hash BYTEA NOT NULL,
    client_id TEXT NOT NULL,
    registered_client UUID,
    client_name TEXT NOT NULL,
    user_id UUID NOT NULL,
    org_id UUID NOT NULL,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used BOOLEAN NOT NULL DEFAULT false,
    grant_id UUID,
    CONSTRAINT oauth_codes_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_codes_code_hash_unique UNIQUE (code_hash),
    CONSTRAINT oauth_codes_client_fkey FOREIGN KEY (registered_client) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT oauth_codes_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE SET NULL,
    CONSTRAINT oauth_codes_scopes_check CHECK (jsonb_typeof(scopes::jsonb) = 'array')
);
CREATE INDEX oauth_codes_expires_idx ON oauth_codes (expires_at);

CREATE TABLE oauth_access_tokens (
    id UUID NOT NULL,
    grant_id UUID NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT oauth_access_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_access_tokens_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT oauth_access_tokens_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
);
CREATE INDEX oauth_access_tokens_grant_idx ON oauth_access_tokens (grant_id);

CREATE TABLE oauth_refresh_tokens (
    id UUID NOT NULL,
    grant_id UUID NOT NULL,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT oauth_refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_refresh_tokens_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT oauth_refresh_tokens_grant_fkey FOREIGN KEY (grant_id) REFERENCES oauth_grants (id) ON DELETE CASCADE
);
CREATE INDEX oauth_refresh_tokens_grant_idx ON oauth_refresh_tokens (grant_id);
