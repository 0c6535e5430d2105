-- AUTH-10: an OpenID provider's `link_existing = "email_verified"` links a first sign-in to the
-- local account with the same email. That is only safe when the server itself knows the account
-- owns the address: a self-registered account's email is whatever its maker typed. The flag is
-- set for accounts a server admin created with an email (or later marked), and for accounts a
-- provider created with an email it said it verified. Accounts that exist already are not
-- verified: an admin marks them (`PATCH /admin/users/{id}` `{"email_verified": true}`).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
