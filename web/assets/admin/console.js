// What the sections of the admin console share: who is signed in and the content area the
// section on show fills (`current`, set by `admin.js`), the org roles, and the table, paging,
// error and copy-button pieces every section draws with.

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

/**
 * A table row: a string is a text cell, a `<td>` stays as it is, anything else (an element, or
 * nothing) is put in a cell of its own.
 */
export function row(attrs, ...cells) {
  const cell = (c) => (typeof c === 'string' ? el('td', { text: c }) : c instanceof HTMLTableCellElement ? c : el('td', {}, c));
  return el('tr', attrs, cells.map(cell));
}

/**
 * Shows a page of a newest-first list in `body`: instead of what it showed (the first page) or
 * below it (an `older` page); one row saying `empty` (across `columns`) when nothing is listed.
 */
export function fillPage(body, items, toRow, { older, empty, columns }) {
  if (!older) body.replaceChildren();
  body.append(...items.map(toRow));
  if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: columns, class: 'empty', text: empty })));
}

/** The button that loads the older page after cursor `next` (once), or null at the end. */
export function olderButton(text, next, load) {
  if (!next) return null;
  const onclick = (ev) => {
    ev.target.disabled = true;
    load(next);
  };
  return el('button', { type: 'button', class: 'small', text, onclick });
}

/** The Copy button beside a secret shown once (`cls`: its class, `small` unless told). */
export function copyButton(secret, cls = 'small') {
  return el('button', { type: 'button', class: cls, text: 'Copy', onclick: () => navigator.clipboard?.writeText(secret) });
}

/**
 * The card of `org` in a section its owners and admins manage (`permission`, e.g.
 * `manage_agents`, among the org's `permissions`: the server decides): `build()` gives its
 * content; for anyone else it says who may. `what`: what the section manages ("agents").
 */
export async function managedOrgCard(org, what, permission, build) {
  const label = `${what[0].toUpperCase()}${what.slice(1)} of ${org.name}`;
  const card = (...children) => el('section', { class: 'card', 'data-org-id': org.id, 'aria-label': label }, el('h3', { text: org.name }), ...children);
  if (!(org.permissions ?? []).includes(permission)) {
    return card(el('p', { class: 'muted', text: `Your role here is ${org.role}: only owners and admins of ${org.name} manage its ${what}.` }));
  }
  return card(...(await build()));
}

/** Draws `org`'s card again in place with `make(org)`, keeping the rest of the section. */
export async function replaceOrgCard(org, make) {
  const fresh = await make(org);
  current.content.querySelector(`[data-org-id="${CSS.escape(org.id)}"]`)?.replaceWith(fresh);
  return fresh;
}

/** A number as people read it (`12,345`); `—` for nothing. */
export function count(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString();
}

/** Shows a section of per-org cards: its title, what it manages, and `card(org)` of each of `orgs`. */
export async function showOrgCards(title, intro, orgs, card) {
  const cards = await Promise.all(orgs.map(card));
  show(current.content, el('h2', { text: title }), el('p', { class: 'muted', text: intro }), cards.length ? cards : notice('You belong to no organization yet.', 'info'));
}

/**
 * What is open in each org's card of a section (an edit form, a panel…): `of(org)` is that
 * org's record, made from `initial()` the first time; `clear()` forgets them all.
 */
export function openParts(initial) {
  const parts = new Map();
  return {
    of(org) {
      if (!parts.has(org.id)) parts.set(org.id, initial());
      return parts.get(org.id);
    },
    clear: () => parts.clear(),
  };
}
