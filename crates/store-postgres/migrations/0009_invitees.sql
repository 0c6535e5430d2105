-- AZ-7: an invite may name the one user who may take it (by username key, so the answer to
-- inviting a name is the same whether the account exists). Such an invite is listed for that
-- user and accepted by id; its code works for that user only.
ALTER TABLE invites ADD COLUMN invitee_key TEXT;
CREATE INDEX invites_invitee_idx ON invites (invitee_key);
