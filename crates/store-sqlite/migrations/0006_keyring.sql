-- Secrets at rest (DATA-3): the key ring that seals stored secrets such as TOTP secrets.

-- One row per key. Key 1 is derived from the master key with HKDF (as before the key ring
-- existed) and stores no key material: `wrapped_key` is NULL for it and only for it. Every
-- later key is a random 256-bit data key stored wrapped: nonce ‖ AES-256-GCM ciphertext and tag
-- under the key-encryption key derived from the master key, with associated data naming the id.
-- The newest key not retired is current; a retired key opens nothing.
CREATE TABLE secret_keys (
    id INTEGER NOT NULL,
    wrapped_key BLOB,
    created_at TEXT NOT NULL,
    retired_at TEXT,
    CONSTRAINT secret_keys_pkey PRIMARY KEY (id),
    CONSTRAINT secret_keys_id_check CHECK (id >= 1),
    CONSTRAINT secret_keys_wrapped_check CHECK ((id = 1) = (wrapped_key IS NULL))
);

INSERT INTO secret_keys (id, wrapped_key, created_at, retired_at)
VALUES (1, NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NULL);

-- Rotation and retirement ask which stored secrets a key seals.
CREATE INDEX user_totp_secret_key_idx ON user_totp (secret_key_id);
