-- The embeddable support widget (WEB-4, AGENT-6). A widget key (`cnv_w_…`) is publishable: it
-- sits in the host page's HTML, so it is stored as it is (and listed) and looked up by its
-- unique value; what it grants is bounded by `widget_key_origins` (exact origins, checked on
-- every widget call), its rate limits and the one conversation of each visitor. Its identity
-- secret (the host signs visitors' user ids with it) is sealed at rest (DATA-3) in
-- `widget_key_secrets` (row id = the key id). Each key has two bot accounts of its org that no
-- credential opens (random token hashes, like agents): `visitor_user_id` authors what visitors
-- write, `system_user_id` the notices (handoff). A deleted key is revoked (`revoked_at`): its
-- conversations stay with their messages.
--
-- `widget_visitors` are the people on the host site: one per anonymous session, or one per
-- verified host user id (`external_id`, unique per key), so a verified visitor finds their
-- conversations from another browser. `widget_sessions` are created by the server: the public
-- `id` is never enough — `secret_hash` is the keyed hash of the visitor secret. Each widget
-- conversation is an org conversation with a `widget_conversations` row: its key, visitor and
-- status (`bot` while the AI agent answers, `open` after a handoff, `resolved`).

CREATE TABLE widget_keys (
    id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    name TEXT NOT NULL,
    widget_key TEXT NOT NULL,
    team_id BLOB NOT NULL,
    agent_id BLOB,
    identity TEXT NOT NULL,
    prechat_form INTEGER NOT NULL,
    visitor_user_id BLOB NOT NULL,
    system_user_id BLOB NOT NULL,
    visitor_bot_id BLOB NOT NULL,
    system_bot_id BLOB NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revoked_at TEXT,
    CONSTRAINT widget_keys_pkey PRIMARY KEY (id),
    CONSTRAINT widget_keys_key_unique UNIQUE (widget_key),
    CONSTRAINT widget_keys_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT widget_keys_team_fkey FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE,
    CONSTRAINT widget_keys_agent_fkey FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE SET NULL,
    CONSTRAINT widget_keys_visitor_fkey FOREIGN KEY (visitor_user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT widget_keys_system_fkey FOREIGN KEY (system_user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT widget_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT widget_keys_identity_check CHECK (identity IN ('optional', 'required'))
);
CREATE INDEX widget_keys_org_idx ON widget_keys (org_id, id);

CREATE TABLE widget_key_origins (
    key_id BLOB NOT NULL,
    origin TEXT NOT NULL,
    CONSTRAINT widget_key_origins_pkey PRIMARY KEY (key_id, origin),
    CONSTRAINT widget_key_origins_key_fkey FOREIGN KEY (key_id) REFERENCES widget_keys (id) ON DELETE CASCADE
);
CREATE INDEX widget_key_origins_origin_idx ON widget_key_origins (origin);

CREATE TABLE widget_key_secrets (
    key_id BLOB NOT NULL,
    secret_key_id INTEGER NOT NULL,
    secret_nonce BLOB NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT widget_key_secrets_pkey PRIMARY KEY (key_id),
    CONSTRAINT widget_key_secrets_key_fkey FOREIGN KEY (key_id) REFERENCES widget_keys (id) ON DELETE CASCADE
);
CREATE INDEX widget_key_secrets_secret_key_idx ON widget_key_secrets (secret_key_id);

CREATE TABLE widget_visitors (
    id BLOB NOT NULL,
    key_id BLOB NOT NULL,
    external_id TEXT,
    name TEXT,
    email TEXT,
    created_at TEXT NOT NULL,
    CONSTRAINT widget_visitors_pkey PRIMARY KEY (id),
    CONSTRAINT widget_visitors_key_fkey FOREIGN KEY (key_id) REFERENCES widget_keys (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX widget_visitors_external_idx ON widget_visitors (key_id, external_id);

CREATE TABLE widget_sessions (
    id TEXT NOT NULL,
    key_id BLOB NOT NULL,
    visitor_id BLOB NOT NULL,
    secret_hash BLOB NOT NULL,
    verified INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT widget_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT widget_sessions_key_fkey FOREIGN KEY (key_id) REFERENCES widget_keys (id) ON DELETE CASCADE,
    CONSTRAINT widget_sessions_visitor_fkey FOREIGN KEY (visitor_id) REFERENCES widget_visitors (id) ON DELETE CASCADE
);

CREATE TABLE widget_conversations (
    conversation_id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    key_id BLOB NOT NULL,
    visitor_id BLOB NOT NULL,
    team_id BLOB NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT widget_conversations_pkey PRIMARY KEY (conversation_id),
    CONSTRAINT widget_conversations_conv_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT widget_conversations_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT widget_conversations_key_fkey FOREIGN KEY (key_id) REFERENCES widget_keys (id) ON DELETE CASCADE,
    CONSTRAINT widget_conversations_visitor_fkey FOREIGN KEY (visitor_id) REFERENCES widget_visitors (id) ON DELETE CASCADE,
    CONSTRAINT widget_conversations_status_check CHECK (status IN ('bot', 'open', 'resolved'))
);
CREATE INDEX widget_conversations_visitor_idx ON widget_conversations (visitor_id, created_at);
CREATE INDEX widget_conversations_org_idx ON widget_conversations (org_id, status, conversation_id);
