-- Conclave schema, PostgreSQL flavour: UUID ids, TIMESTAMPTZ times, BOOLEAN flags, BYTEA hashes.
-- Every constraint has a name; the store maps violations to conflicts by statement.

CREATE TABLE users (
    id UUID NOT NULL,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL,
    display_name TEXT,
    email TEXT,
    password_hash TEXT,
    kind TEXT NOT NULL,
    server_admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_username_key_unique UNIQUE (username_key),
    CONSTRAINT users_kind_check CHECK (kind IN ('user', 'bot'))
);

CREATE TABLE server_flags (
    name TEXT NOT NULL,
    set_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT server_flags_pkey PRIMARY KEY (name)
);

CREATE TABLE sessions (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    token_hash BYTEA NOT NULL,
    device TEXT,
    ip TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    cookie BOOLEAN NOT NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE orgs (
    id UUID NOT NULL,
    name TEXT NOT NULL,
    require_2fa BOOLEAN NOT NULL DEFAULT FALSE,
    message_retention_days INTEGER,
    audit_retention_days INTEGER,
    erasure TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT orgs_pkey PRIMARY KEY (id),
    CONSTRAINT orgs_erasure_check CHECK (erasure IN ('tombstone', 'anonymise'))
);

CREATE TABLE org_members (
    org_id UUID NOT NULL,
    user_id UUID NOT NULL,
    role TEXT NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT org_members_pkey PRIMARY KEY (org_id, user_id),
    CONSTRAINT org_members_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT org_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT org_members_role_check CHECK (role IN ('owner', 'admin', 'member', 'viewer'))
);
CREATE INDEX org_members_user_idx ON org_members (user_id);

CREATE TABLE invites (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    code_hash BYTEA NOT NULL,
    role TEXT NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT invites_pkey PRIMARY KEY (id),
    CONSTRAINT invites_code_hash_unique UNIQUE (code_hash),
    CONSTRAINT invites_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT invites_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT invites_role_check CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    CONSTRAINT invites_uses_check CHECK (uses >= 0 AND (max_uses IS NULL OR max_uses >= 1))
);
CREATE INDEX invites_org_idx ON invites (org_id);

CREATE TABLE teams (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT teams_pkey PRIMARY KEY (id),
    CONSTRAINT teams_org_name_unique UNIQUE (org_id, name),
    CONSTRAINT teams_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE
);

CREATE TABLE team_members (
    team_id UUID NOT NULL,
    user_id UUID NOT NULL,
    CONSTRAINT team_members_pkey PRIMARY KEY (team_id, user_id),
    CONSTRAINT team_members_team_fkey FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE,
    CONSTRAINT team_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE conversations (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    visibility TEXT NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT FALSE,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    direct_key TEXT,
    CONSTRAINT conversations_pkey PRIMARY KEY (id),
    CONSTRAINT conversations_org_direct_key_unique UNIQUE (org_id, direct_key),
    CONSTRAINT conversations_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT conversations_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT conversations_kind_check CHECK (kind IN ('direct', 'group')),
    CONSTRAINT conversations_visibility_check CHECK (visibility IN ('private', 'org', 'teams')),
    CONSTRAINT conversations_last_seq_check CHECK (last_seq >= 0)
);
CREATE INDEX conversations_org_idx ON conversations (org_id, id);

CREATE TABLE conversation_teams (
    conversation_id UUID NOT NULL,
    team_id UUID NOT NULL,
    CONSTRAINT conversation_teams_pkey PRIMARY KEY (conversation_id, team_id),
    CONSTRAINT conversation_teams_conversation_fkey FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT conversation_teams_team_fkey FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE
);
CREATE INDEX conversation_teams_team_idx ON conversation_teams (team_id);

CREATE TABLE messages (
    id UUID NOT NULL,
    conversation_id UUID NOT NULL,
    seq BIGINT NOT NULL,
    author_id UUID NOT NULL,
    content TEXT,
    format TEXT NOT NULL,
    reply_to UUID,
    created_at TIMESTAMPTZ NOT NULL,
    edited_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_conversation_seq_unique UNIQUE (conversation_id, seq),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT messages_author_fkey FOREIGN KEY (author_id) REFERENCES users (id),
    CONSTRAINT messages_reply_to_fkey FOREIGN KEY (reply_to) REFERENCES messages (id) ON DELETE SET NULL,
    CONSTRAINT messages_format_check CHECK (format IN ('text', 'html'))
);
CREATE INDEX messages_reply_to_idx ON messages (reply_to);

CREATE TABLE participants (
    conversation_id UUID NOT NULL,
    user_id UUID NOT NULL,
    role TEXT NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    last_read_message_id UUID,
    CONSTRAINT participants_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT participants_conversation_fkey FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT participants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT participants_last_read_fkey FOREIGN KEY (last_read_message_id)
        REFERENCES messages (id) ON DELETE SET NULL,
    CONSTRAINT participants_role_check CHECK (role IN ('owner', 'moderator', 'member'))
);
CREATE INDEX participants_user_idx ON participants (user_id, conversation_id);

CREATE TABLE message_versions (
    id UUID NOT NULL,
    message_id UUID NOT NULL,
    content TEXT NOT NULL,
    format TEXT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL,
    replaced_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT message_versions_pkey PRIMARY KEY (id),
    CONSTRAINT message_versions_message_fkey FOREIGN KEY (message_id)
        REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT message_versions_format_check CHECK (format IN ('text', 'html'))
);
CREATE INDEX message_versions_message_idx ON message_versions (message_id, written_at);

CREATE TABLE idempotency_keys (
    author_id UUID NOT NULL,
    conversation_id UUID NOT NULL,
    key TEXT NOT NULL,
    message_id UUID NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (author_id, conversation_id, key),
    CONSTRAINT idempotency_keys_author_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_conversation_fkey FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_message_fkey FOREIGN KEY (message_id)
        REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_message_idx ON idempotency_keys (message_id);
