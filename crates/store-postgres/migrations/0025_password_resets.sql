-- One-time links to set an account's password, made by a server admin (API
-- `POST /admin/users/{id}/password-reset`, `conclave users reset-password`): by the keyed hash
-- of their token, one live link per account (a new one replaces it), an hour each.
CREATE TABLE password_resets (
    token_hash BYTEA NOT NULL,
    user_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT password_resets_pkey PRIMARY KEY (token_hash),
    CONSTRAINT password_resets_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX password_resets_user_idx ON password_resets (user_id);
CREATE INDEX password_resets_expires_idx ON password_resets (expires_at);
