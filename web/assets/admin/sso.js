// The Single sign-on section of the admin console (`/admin#/sso`): the host apps whose JWTs
// sign users in (AUTH-11) and the OpenID providers (AUTH-10), as configured. Read-only: they
// come from the server's configuration file; secrets are never shown (the client secret is
// masked, `****abcd`).

import { api } from '../api.js';
import { el, show } from '../dom.js';
import { current, row, table } from './console.js';

const yes = (b) => (b ? 'yes' : 'no');

export async function ssoView() {
  const sso = await api('GET', '/admin/sso');
  const hosts = sso.host_jwt.map((h) =>
    row(
      { 'data-host': h.id },
      h.id,
      h.issuer,
      h.audience,
      h.algorithms.join(', '),
      h.jwks_url ? `JWKS ${h.jwks_url}` : h.keys.replace('_', ' '),
      yes(h.single_use),
      yes(h.create_users),
      `${h.max_lifetime_secs} s (±${h.leeway_secs} s)`,
    ),
  );
  const providers = sso.oidc.map((p) =>
    row(
      { 'data-provider': p.id },
      `${p.name} (${p.id})`,
      p.issuer,
      p.client_id,
      p.client_secret ?? 'none (public client)',
      p.scopes.join(' '),
      p.link_existing,
      yes(p.create_users),
      p.roles.map((r) => `${r.claim}=${r.value} → ${r.role} in ${r.org}`).join('; ') || '—',
      p.redirect_uri,
    ),
  );
  show(
    current.content,
    el('h2', { text: 'Single sign-on' }),
    el('p', { class: 'muted', text: 'Configured in the server’s configuration file ([[host_jwt]], [[oidc.providers]]): shown here read-only. An account’s linked identities are on the Users page.' }),
    el('div', { class: 'table-scroll' }, table('Host apps (signed JWTs)', ['Id', 'Issuer', 'Audience', 'Algorithms', 'Keys', 'Single use', 'Creates users', 'Lifetime'], hosts)),
    el('div', { class: 'table-scroll' }, table('OpenID providers', ['Provider', 'Issuer', 'Client id', 'Client secret', 'Scopes', 'Link existing', 'Creates users', 'Roles', 'Redirect URI'], providers)),
  );
}
