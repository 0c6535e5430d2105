-- Account erasure (DATA-6): when the account was erased; an erased account cannot be re-enabled.
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;
