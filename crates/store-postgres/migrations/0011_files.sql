-- DATA-1/DATA-2: uploaded files. The bytes live in object storage under `storage_key` (a
-- UUIDv7 the server makes, never a user path); the row says which conversation holds the file,
-- who uploaded it, what the content was detected as and the display name (sanitised).
-- `message_id` is set once a message claims the file as an attachment (at most one).
CREATE TABLE files (
    id UUID NOT NULL,
    conversation_id UUID NOT NULL,
    uploader_id UUID NOT NULL,
    storage_key TEXT NOT NULL,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    message_id UUID,
    CONSTRAINT files_pkey PRIMARY KEY (id),
    CONSTRAINT files_storage_key_unique UNIQUE (storage_key),
    CONSTRAINT files_conversation_fkey FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT files_uploader_fkey FOREIGN KEY (uploader_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT files_message_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL,
    CONSTRAINT files_size_check CHECK (size > 0)
);
CREATE INDEX files_conversation_idx ON files (conversation_id);
CREATE INDEX files_uploader_idx ON files (uploader_id);
CREATE INDEX files_message_idx ON files (message_id);

-- The bytes each user holds or is uploading right now: an upload reserves its bytes here with
-- one conditional UPDATE (so parallel uploads cannot pass the quota together) and gives back
-- what it did not keep.
CREATE TABLE file_usage (
    user_id UUID NOT NULL,
    used_bytes BIGINT NOT NULL,
    CONSTRAINT file_usage_pkey PRIMARY KEY (user_id),
    CONSTRAINT file_usage_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT file_usage_used_bytes_check CHECK (used_bytes >= 0)
);

