// The sessions page of the chat client (`#/sessions`): every device signed in to my account,
// impersonated sessions flagged, each revocable; and "sign out all other sessions".

import { api } from '../api.js';
import { el, notice, show } from '../dom.js';
import { ui } from './state.js';

export async function sessionsView() {
  const list = el('ul', { class: 'sessions', 'aria-label': 'Signed-in sessions' });
  const status = el('div');
  show(
    ui.main,
    el('h2', { text: 'Sessions' }),
    el('p', { text: 'Devices signed in to your account. Revoking one signs it out at once.' }),
    list,
    el('button', {
      type: 'button',
      text: 'Sign out all other sessions',
      onclick: async () => {
        try {
          await api('POST', '/auth/sessions/revoke-others');
          await sessionsView();
        } catch (e) {
          show(status, notice(e.message));
        }
      },
    }),
    status,
  );
  const sessions = await api('GET', '/auth/sessions');
  show(
    list,
    sessions.items.map((s) =>
      el(
        'li',
        { 'data-session-id': s.id },
        el('strong', { text: s.device || 'Unknown device' }),
        s.impersonator ? el('span', { class: 'flag', text: `Impersonated by an administrator (${s.impersonator})` }) : null,
        el('span', { class: 'muted', text: ` ${s.ip ?? ''} · signed in ${new Date(s.created_at).toLocaleString()} · last seen ${new Date(s.last_seen_at).toLocaleString()}` }),
        s.current
          ? el('span', { class: 'badge', text: 'This device' })
          : el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `Revoke session on ${s.device || 'unknown device'}`,
              text: 'Revoke',
              onclick: async () => {
                try {
                  await api('DELETE', `/auth/sessions/${s.id}`);
                  await sessionsView();
                } catch (e) {
                  show(status, notice(e.message));
                }
              },
            }),
      ),
    ),
  );
}
