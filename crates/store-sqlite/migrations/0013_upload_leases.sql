-- DATA-1: the bytes an upload in progress has reserved (also counted in file_usage), under a
-- lease its reservations renew. Recording the file ends the lease (its bytes are the file's);
-- a failed upload ends it and gives its bytes back. A node that dies mid-upload leaves its lease
-- behind: the file sweep expires leases not renewed for longer than any upload can stall and
-- gives their bytes back, so a crash never shrinks a quota for good.
CREATE TABLE upload_leases (
    id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    renewed_at TEXT NOT NULL,
    CONSTRAINT upload_leases_pkey PRIMARY KEY (id),
    CONSTRAINT upload_leases_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT upload_leases_bytes_check CHECK (bytes >= 0)
);
CREATE INDEX upload_leases_renewed_idx ON upload_leases (renewed_at);
