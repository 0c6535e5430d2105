// The Capabilities section of the admin console (`/admin#/capabilities`): what this server
// reports to clients, flattened into one row per key.

import { api } from '../api.js';
import { el, show } from '../dom.js';
import { current } from './console.js';

export async function capabilitiesView() {
  const caps = await api('GET', '/capabilities');
  const rows = (obj, prefix = '') =>
    Object.entries(obj).flatMap(([k, v]) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? rows(v, `${prefix}${k}.`)
        : [el('tr', {}, el('th', { scope: 'row', text: `${prefix}${k}` }), el('td', { text: Array.isArray(v) ? v.join(', ') : String(v) }))],
    );
  show(current.content, el('h2', { text: 'Capabilities' }), el('p', { class: 'muted', text: 'What this server reports to clients (GET /api/v1/capabilities).' }), el('table', {}, el('caption', { text: 'Server capabilities' }), el('tbody', {}, rows(caps))));
}
