-- AI agents (AGENT-1, AGENT-4). An agent is a bot account of its org (a `bots` row whose token
-- hash is random bytes no token hashes to, so no credential for it exists) with a model
-- configuration. Its API key for the model endpoint is sealed at rest (DATA-3) in `agent_keys`
-- (row id = the agent id). `agent_org_budgets` holds an org's monthly token cap (no row: none);
-- `agent_token_months` counts tokens used and reserved per agent and per org (`scope_id`) and
-- calendar month (UTC, `YYYY-MM`): a call reserves its estimate with one conditional UPDATE and
-- settles with the provider's usage. `agent_calls` is one row per model call, for the per-day
-- usage report (calls, tokens, failures, latency percentiles).

CREATE TABLE agents (
    id BLOB NOT NULL,
    org_id BLOB NOT NULL,
    bot_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT,
    temperature REAL,
    max_output_tokens INTEGER NOT NULL,
    context_messages INTEGER NOT NULL,
    monthly_token_budget INTEGER,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT agents_pkey PRIMARY KEY (id),
    CONSTRAINT agents_user_unique UNIQUE (user_id),
    CONSTRAINT agents_bot_unique UNIQUE (bot_id),
    CONSTRAINT agents_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT agents_bot_fkey FOREIGN KEY (bot_id) REFERENCES bots (id) ON DELETE CASCADE,
    CONSTRAINT agents_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT agents_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT agents_temperature_check CHECK (temperature IS NULL OR (temperature >= 0 AND temperature <= 2)),
    CONSTRAINT agents_max_output_tokens_check CHECK (max_output_tokens BETWEEN 1 AND 32768),
    CONSTRAINT agents_context_messages_check CHECK (context_messages BETWEEN 1 AND 200),
    CONSTRAINT agents_budget_check CHECK (monthly_token_budget IS NULL OR monthly_token_budget >= 0)
);
CREATE INDEX agents_org_idx ON agents (org_id, id);

CREATE TABLE agent_keys (
    agent_id BLOB NOT NULL,
    hint TEXT NOT NULL,
    secret_key_id INTEGER NOT NULL,
    secret_nonce BLOB NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT agent_keys_pkey PRIMARY KEY (agent_id),
    CONSTRAINT agent_keys_agent_fkey FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_keys_secret_key_idx ON agent_keys (secret_key_id);

CREATE TABLE agent_org_budgets (
    org_id BLOB NOT NULL,
    monthly_token_budget INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT agent_org_budgets_pkey PRIMARY KEY (org_id),
    CONSTRAINT agent_org_budgets_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE CASCADE,
    CONSTRAINT agent_org_budgets_check CHECK (monthly_token_budget >= 0)
);

CREATE TABLE agent_token_months (
    scope_id BLOB NOT NULL,
    month TEXT NOT NULL,
    used INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    CONSTRAINT agent_token_months_pkey PRIMARY KEY (scope_id, month),
    CONSTRAINT agent_token_months_used_check CHECK (used >= 0),
    CONSTRAINT agent_token_months_reserved_check CHECK (reserved >= 0)
);

CREATE TABLE agent_calls (
    id BLOB NOT NULL,
    agent_id BLOB NOT NULL,
    day TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    CONSTRAINT agent_calls_pkey PRIMARY KEY (id),
    CONSTRAINT agent_calls_agent_fkey FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_calls_agent_day_idx ON agent_calls (agent_id, day);
