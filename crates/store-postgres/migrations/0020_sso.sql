-- Single sign-on (AUTH-10, AUTH-11). `user_identities` links an outside identity — a host
-- app's `sub` (`host_jwt`, provider = the `[[host_jwt]]` id), an OpenID provider's `sub`
-- (`oidc`, provider = the issuer) or a directory entry (`ldap`) — to one local account, never by
-- email alone. `sso_spent_tokens` remembers single-use token ids (a host JWT's `jti`) until the
-- token expires: spending one is a single INSERT, so every node refuses a replay.
-- `sso_logins` holds an OpenID sign-in between its start and its callback: only a keyed hash of
-- the `state` (the nonce and PKCE verifier are derived from the state with a server key, so
-- nothing here lets anyone finish the sign-in), single use (deleted when taken), short-lived.

CREATE TABLE user_identities (
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT user_identities_pkey PRIMARY KEY (kind, provider, subject),
    CONSTRAINT user_identities_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_identities_kind_check CHECK (kind IN ('host_jwt', 'oidc', 'ldap'))
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

CREATE TABLE sso_spent_tokens (
    provider TEXT NOT NULL,
    token_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT sso_spent_tokens_pkey PRIMARY KEY (provider, token_id)
);
CREATE INDEX sso_spent_tokens_expiry_idx ON sso_spent_tokens (expires_at);

CREATE TABLE sso_logins (
    state_hash BYTEA NOT NULL,
    provider TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT sso_logins_pkey PRIMARY KEY (state_hash)
);
CREATE INDEX sso_logins_expiry_idx ON sso_logins (expires_at);
