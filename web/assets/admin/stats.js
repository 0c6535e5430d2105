// The Statistics section of the admin console (`/admin#/stats`): what `GET /api/v1/admin/stats`
// reports — content guards over every org and how many of each decision they made (RATE-6).

import { api } from '../api.js';
import { el, show } from '../dom.js';
import { current } from './console.js';

const GUARD_ROWS = [
  ['Guards', (g) => g.guards],
  ['Enabled guards', (g) => g.enabled],
  ['Organizations with guards', (g) => g.orgs],
  ['Posts allowed', (g) => g.counts.allowed],
  ['Posts flagged', (g) => g.counts.flagged],
  ['Posts blocked', (g) => g.counts.blocked],
  ['Check errors', (g) => g.counts.errors],
  ['Flags waiting for review', (g) => g.open_flags],
];

export async function statsView() {
  const stats = await api('GET', '/admin/stats');
  const rows = GUARD_ROWS.map(([label, value]) => el('tr', {}, el('th', { scope: 'row', text: label }), el('td', { text: String(value(stats.guards)) })));
  show(
    current.content,
    el('h2', { text: 'Statistics' }),
    el('p', { class: 'muted', text: 'Content guards over every organization: each guard counts every decision it makes.' }),
    el('table', {}, el('caption', { text: 'Content guards' }), el('tbody', {}, rows)),
  );
}
