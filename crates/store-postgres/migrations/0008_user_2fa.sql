-- Per-user two-factor requirement (AUTH-4, set by server admins): until the user turns 2FA on,
-- their session may only reach the account and 2FA setup routes.
ALTER TABLE users ADD COLUMN require_2fa BOOLEAN NOT NULL DEFAULT FALSE;
