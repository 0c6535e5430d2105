-- Real time: read markers and the resume state of gateway sessions.

-- `participants_last_read_fkey` (0001) already sets a read marker to NULL when its message goes;
-- this index keeps that from scanning every participant on each message delete.
CREATE INDEX participants_last_read_idx ON participants (last_read_message_id);

-- What a gateway session leaves behind for a RESUME. `auth_session_id` has no foreign key: the
-- login session may be gone by then, and the resume checks it anyway. `conversations` is a JSON
-- array of uuid strings, kept as TEXT so both backends store and read the same thing.
CREATE TABLE gateway_sessions (
    id UUID NOT NULL,
    user_id UUID NOT NULL,
    auth_session_id UUID NOT NULL,
    last_s BIGINT NOT NULL,
    position BIGINT NOT NULL,
    epoch TEXT NOT NULL,
    conversations TEXT NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT gateway_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT gateway_sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT gateway_sessions_conversations_check
        CHECK (jsonb_typeof(conversations::jsonb) = 'array')
);
CREATE INDEX gateway_sessions_saved_idx ON gateway_sessions (saved_at);
CREATE INDEX gateway_sessions_user_idx ON gateway_sessions (user_id);
