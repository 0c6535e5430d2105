-- The audit log (DATA-4): one chain per org and one for the server (`chain` is the org id as
-- text, or 'server'). Rows are numbered per chain and carry the HMAC of the previous row's hash
-- and their canonical form. No foreign keys: rows outlive the users, orgs and sessions they name.
-- `audit_heads` holds each chain's newest row (its row lock serialises concurrent appends on
-- PostgreSQL); `audit_checkpoints` the signed point a pruned chain continues from (DATA-5).

CREATE TABLE audit_log (
    id UUID NOT NULL,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    event TEXT NOT NULL,
    actor_id UUID,
    actor_type TEXT NOT NULL,
    impersonator_id UUID,
    resource_type TEXT,
    resource_id TEXT,
    org_id UUID,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_chain_seq_unique UNIQUE (chain, seq)
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, id);
CREATE INDEX audit_log_resource_idx ON audit_log (resource_type, resource_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
CREATE INDEX audit_log_chain_at_idx ON audit_log (chain, at);

CREATE TABLE audit_heads (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    CONSTRAINT audit_heads_pkey PRIMARY KEY (chain)
);

CREATE TABLE audit_checkpoints (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (chain)
);

-- Impersonation (AUTH-12): the server admin behind a session, when there is one.
ALTER TABLE sessions ADD COLUMN impersonator_id UUID;
