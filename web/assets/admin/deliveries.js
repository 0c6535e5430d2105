// The deliveries of one webhook in the admin console (HOOK-2): newest first, each with its
// event, status, attempts, the last HTTP status, latency and error, and a Redeliver button
// (which queues the same body again as a new delivery). While a delivery on the first page
// is pending, the list refreshes itself every two seconds.

import { api } from '../api.js';
import { el, notice, show, smallButton } from '../dom.js';
import { errorTo, fillPage, olderButton, row, table } from './console.js';

const PAGE = 20;
const POLL_MS = 2000;

const when = (at) => el('time', { datetime: at, text: new Date(at).toLocaleString() });

/** The delivery's standing in words: a pending one says when it is tried next. */
function standing(d) {
  if (d.status !== 'pending' || d.attempts === 0) return d.status;
  return `pending (retry at ${new Date(d.next_attempt_at).toLocaleTimeString()})`;
}

/** The deliveries panel of webhook `hook` of `org`; `close()` hides it. */
export function deliveriesPart(org, hook, close) {
  const status = el('div');
  const body = el('tbody');
  const more = el('div', { class: 'pager' });
  const path = `/orgs/${org.id}/webhooks/${hook.id}/deliveries`;
  let timer = null;

  const deliveryRow = (d) =>
    row(
      { 'data-delivery-id': d.id, class: d.status === 'failed' ? 'failed' : null },
      el('td', {}, when(d.created_at)),
      el('td', {}, el('code', { text: d.event_type })),
      el('td', { class: `delivery-${d.status}`, text: standing(d) }),
      String(d.attempts),
      d.last_status_code === null ? '—' : String(d.last_status_code),
      d.latency_ms === null ? '—' : `${d.latency_ms} ms`,
      d.last_error ?? '',
      smallButton('Redeliver', `Redeliver the ${d.event_type} event of ${new Date(d.created_at).toLocaleString()}`, () =>
        api('POST', `${path}/${d.id}/redeliver`, {}).then(() => load(), errorTo(status)),
      ),
    );

  /** Loads the newest page (or, with `before`, the next older one below those shown). */
  const load = async (before) => {
    clearTimeout(timer);
    let page;
    try {
      page = await api('GET', `${path}?limit=${PAGE}${before ? `&before=${encodeURIComponent(before)}` : ''}`);
    } catch (e) {
      show(status, notice(e.message));
      return;
    }
    status.replaceChildren();
    fillPage(body, page.items, deliveryRow, { older: before, empty: 'No deliveries yet.', columns: 8 });
    show(more, olderButton('Older deliveries', page.next, load));
    if (!before && page.items.some((d) => d.status === 'pending')) {
      timer = setTimeout(() => {
        if (panel.isConnected) load();
      }, POLL_MS);
    }
  };

  const panel = el(
    'section',
    { class: 'org-part deliveries', 'aria-label': `Deliveries of ${hook.url}` },
    el('h4', {}, 'Deliveries to ', el('code', { text: hook.url })),
    el(
      'div',
      { class: 'filter-buttons' },
      el('button', { type: 'button', class: 'small', text: 'Refresh', 'aria-label': `Refresh the deliveries of ${hook.url}`, onclick: () => load() }),
      el('button', { type: 'button', class: 'small secondary', text: 'Close', 'aria-label': `Close the deliveries of ${hook.url}`, onclick: close }),
    ),
    status,
    el('div', { class: 'table-scroll' }, table(`Deliveries of ${hook.url}`, ['Queued', 'Event', 'Status', 'Attempts', 'HTTP status', 'Latency', 'Last error', 'Actions'], [])),
    more,
  );
  panel.querySelector('tbody').replaceWith(body);
  load();
  return panel;
}
