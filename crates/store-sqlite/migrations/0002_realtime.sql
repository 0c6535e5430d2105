-- Real time: read markers and the resume state of gateway sessions.

-- `participants_last_read_fkey` (0001) already sets a read marker to NULL when its message goes;
-- this index keeps that from scanning every participant on each message delete.
CREATE INDEX participants_last_read_idx ON participants (last_read_message_id);

-- What a gateway session leaves behind for a RESUME. `auth_session_id` has no foreign key: the
-- login session may be gone by then, and the resume checks it anyway. `conversations` is a JSON
-- array of uuid strings.
CREATE TABLE gateway_sessions (
    id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    auth_session_id BLOB NOT NULL,
    last_s INTEGER NOT NULL,
    position INTEGER NOT NULL,
    epoch TEXT NOT NULL,
    conversations TEXT NOT NULL,
    saved_at TEXT NOT NULL,
    CONSTRAINT gateway_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT gateway_sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT gateway_sessions_conversations_check
        CHECK (json_valid(conversations) AND json_type(conversations) = 'array')
);
CREATE INDEX gateway_sessions_saved_idx ON gateway_sessions (saved_at);
CREATE INDEX gateway_sessions_user_idx ON gateway_sessions (user_id);
