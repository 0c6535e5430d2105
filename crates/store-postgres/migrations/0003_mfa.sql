-- Two-factor authentication (AUTH-4) and login throttling (AUTH-5).

-- A user's TOTP secret, sealed with AES-256-GCM (core::secretbox): the id of the key that
-- sealed it, the 96-bit nonce and the ciphertext with its tag; the associated data binds it to
-- the user id. `enabled_at` is NULL while the secret is set up but not confirmed. `last_step`
-- is the last time step a code was accepted for: codes of that step or earlier are refused, on
-- every node, because the update that advances it is conditional.
CREATE TABLE user_totp (
    user_id UUID NOT NULL,
    secret_key_id INTEGER NOT NULL,
    secret_nonce BYTEA NOT NULL,
    secret_ciphertext BYTEA NOT NULL,
    enabled_at TIMESTAMPTZ,
    last_step BIGINT,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT user_totp_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_totp_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- One-time recovery codes: the non-secret lookup prefix and the Argon2id hash (PHC string) of
-- the whole code; `used_at` is set once, when the code is used.
CREATE TABLE recovery_codes (
    user_id UUID NOT NULL,
    lookup TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, lookup),
    CONSTRAINT recovery_codes_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- Sign-ins waiting for their second factor, by the keyed hash of their `mfa_token`.
CREATE TABLE mfa_challenges (
    token_hash BYTEA NOT NULL,
    user_id UUID NOT NULL,
    cookie BOOLEAN NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT mfa_challenges_pkey PRIMARY KEY (token_hash),
    CONSTRAINT mfa_challenges_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);

-- Failed sign-in counters: per (account, IP), per account (ip = '') and per IP (account = '').
-- `account` is a keyed hash of the case-folded username, so unknown names are counted the same
-- way and no typed name is stored.
CREATE TABLE login_failures (
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures BIGINT NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT login_failures_pkey PRIMARY KEY (account, ip),
    CONSTRAINT login_failures_key_check CHECK (account <> '' OR ip <> ''),
    CONSTRAINT login_failures_failures_check CHECK (failures >= 1)
);
CREATE INDEX login_failures_last_idx ON login_failures (last_failure_at);
