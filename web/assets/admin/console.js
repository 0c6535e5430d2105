// What the sections of the admin console share: who is signed in and the content area the
// section on show fills (`current`, set by `admin.js`), the org roles, and the table, error
// and copy-button pieces every section draws with.

import { el, notice, show } from '../dom.js';

/** `me`: the signed-in user; `content`: the element the section on show renders into. */
export const current = { me: null, content: null };

export const ROLES = ['owner', 'admin', 'member', 'viewer'];

/** A rejection handler that shows the error's message in `node`. */
export function errorTo(node) {
  return (e) => show(node, notice(e.message));
}

/** A captioned table; an empty `rows` shows one "None." row. */
export function table(caption, headers, rows) {
  return el(
    'table',
    {},
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'empty', text: 'None.' }))),
  );
}

/** The Copy button beside a secret shown once (`cls`: its class, `small` unless told). */
export function copyButton(secret, cls = 'small') {
  return el('button', { type: 'button', class: cls, text: 'Copy', onclick: () => navigator.clipboard?.writeText(secret) });
}
