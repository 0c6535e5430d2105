// A real OpenID provider for the Rust HTTP suite (crates/server/tests/api/sso/oidc/):
// oidc-provider (a certified implementation) with its development login and consent pages.
//
//   node web/tests/oidc-provider.mjs '{"client_id","client_secret","redirect_uri","accounts":{…}}'
//
// listens on 127.0.0.1 (a free port), prints {"issuer": "http://127.0.0.1:<port>"} once ready,
// and serves until killed. Accounts are `{ "<sub>": { email, email_verified, name,
// preferred_username, groups } }`; the login page accepts any of their ids (any password).
// ID tokens carry the claims of the scopes asked for (openid email profile groups).
import http from 'node:http';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2]);
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const accounts = cfg.accounts;

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['conclave-test-only-cookie-key'] },
});
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
