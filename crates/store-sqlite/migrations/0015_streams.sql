-- AGENT-3: an AI agent's answer is a message that grows while it streams. `status` says where
-- it stands: `complete` (every message written at once, and an answer that finished),
-- `streaming` (being written: the content is the text so far), `failed` or `stopped` (ended
-- early; the content is what was written until then). `status_reason` is a short reason for
-- `failed`/`stopped` (never provider text). Every change of a streaming message is one
-- conditional UPDATE ... WHERE status = 'streaming', so a stop on any node and the stream's
-- own writes never both win.
ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete'
    CONSTRAINT messages_status_check
    CHECK (status IN ('complete', 'streaming', 'failed', 'stopped'));

ALTER TABLE messages ADD COLUMN status_reason TEXT;

-- Answers left streaming by a node that stopped mid-way are found by the periodic sweep.
CREATE INDEX messages_streaming_idx ON messages (created_at) WHERE status = 'streaming';
