// Files in the chat client. The composer's side: files picked with the Attach button or
// dropped on the composer upload at once (`POST /files`, multipart `conversation_id` and
// `file`), each with its progress and, when refused, why in words; the message then carries
// the ids of those that arrived (`attachment_ids`). The log's side: a message's `attachments`
// drawn as image previews (PNG, JPEG, GIF, WebP) or download links.
//
// A file's bytes come from a signed URL (`GET /files/{id}/url`) that expires: one is asked for
// when a preview is drawn or a link is clicked, and reused only until shortly before its
// `expires_at`. File names are text, never markup: they go into text nodes and attributes.

import { api, upload } from '../api.js';
import { el, formatBytes, smallButton } from '../dom.js';

/** The types the server serves inline, drawn as previews; anything else is a download. */
const PREVIEW_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
/** A URL is not used this close to its expiry. */
const EXPIRY_MARGIN_MS = 15_000;

/** file id → `{url, expires}` (ms since the epoch), used until shortly before `expires`. */
const urls = new Map();

/** A signed URL of file `id` that is good for a while yet. */
async function fileUrl(id) {
  const known = urls.get(id);
  if (known && known.expires - EXPIRY_MARGIN_MS > Date.now()) return known.url;
  const r = await api('GET', `/files/${id}/url`);
  const now = Date.now();
  for (const [key, u] of urls) if (u.expires <= now) urls.delete(key);
  const url = onThisOrigin(r.url);
  urls.set(id, { url, expires: Date.parse(r.expires_at) });
  return url;
}

/**
 * A media URL as this page reaches it: the server's `/media/…` path on the page's own origin
 * (the signature covers the path and expiry, not the host), so a page opened under another
 * name than the configured public URL still shows previews (the CSP takes images from 'self').
 */
function onThisOrigin(raw) {
  const u = new URL(raw, location.href);
  return u.pathname.startsWith('/media/') ? `${u.pathname}${u.search}` : u.href;
}

/** Forgets the URL of `id` (it was refused: expired early, or the file is gone). */
function forgetUrl(id) {
  urls.delete(id);
}

/** `a.name (size)` for people. */
const described = (a) => `${a.name} (${formatBytes(a.size)})`;

/** An image attachment: its preview (opening the full image on click) and its name. */
function preview(a) {
  const img = el('img', { alt: a.name, class: 'preview', loading: 'lazy', decoding: 'async' });
  const broken = el('span', { class: 'muted', text: 'Preview unavailable.' });
  let retried = false;
  img.addEventListener('error', () => {
    // One new URL (the last one may have expired meanwhile), then give up.
    forgetUrl(a.id);
    if (retried) {
      img.replaceWith(broken);
      return;
    }
    retried = true;
    fileUrl(a.id).then((url) => (img.src = url), () => img.replaceWith(broken));
  });
  fileUrl(a.id).then((url) => (img.src = url), () => img.replaceWith(broken));
  const open = el('button', { type: 'button', class: 'preview-button', 'aria-label': `Open the image ${described(a)}`, onclick: () => openFile(a) }, img);
  return el('figure', { class: 'attachment image', 'data-file-id': a.id }, open, el('figcaption', {}, el('span', { text: a.name }), el('span', { class: 'muted', text: formatBytes(a.size) })));
}

/** Another attachment: a link that downloads it (the URL asked for on click). */
function downloadLink(a) {
  const link = el('a', { href: '#', class: 'file-link', 'aria-label': `Download ${described(a)}`, text: a.name });
  const status = el('span', { class: 'muted', role: 'status' });
  link.addEventListener('click', async (ev) => {
    ev.preventDefault();
    status.textContent = '';
    try {
      const url = await fileUrl(a.id);
      const save = el('a', { href: url, download: a.name, hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
    } catch (e) {
      status.textContent = `Could not download: ${e.message}`;
    }
  });
  return el('div', { class: 'attachment file', 'data-file-id': a.id }, link, el('span', { class: 'muted', text: formatBytes(a.size) }), status);
}

/** Opens an image in a new tab, with a fresh URL. */
async function openFile(a) {
  const url = await fileUrl(a.id).catch(() => null);
  if (url) window.open(url, '_blank', 'noopener');
}

/** A message's attachments, or null when it has none. */
export function attachmentsOf(m) {
  if (!m.attachments?.length || m.deleted_at) return null;
  return el(
    'div',
    { class: 'attachments', role: 'group', 'aria-label': 'Attachments' },
    m.attachments.map((a) => (PREVIEW_TYPES.has(a.mime) ? preview(a) : downloadLink(a))),
  );
}

/** The largest upload the server takes (from its capabilities; asked for once). */
let maxUpload = null;
function uploadLimit() {
  maxUpload ??= api('GET', '/capabilities').then((c) => c.limits?.upload_max_bytes ?? null, () => null);
  return maxUpload;
}

/** Why the server refused `name`, in words. */
function refusal(name, e, limit) {
  switch (e.code) {
    case 'file_too_large':
      return `${name} is too large: files may be at most ${limit ? formatBytes(limit) : 'the size this server accepts'}.`;
    case 'quota_exceeded':
      return `${name} does not fit: it would take your files past your storage quota. An administrator can tell you how much room you have.`;
    case 'file_type_not_allowed':
      return `${name} was refused: this type of file is not accepted here.`;
    case 'file_polyglot':
      return `${name} was refused: it hides another format inside it.`;
    case 'image_too_large':
      return `${name} was refused: the image has more pixels than this server accepts.`;
    case 'file_empty':
      return `${name} is empty.`;
    case 'file_corrupt':
      return `${name} was refused: the file is damaged.`;
    default:
      return `${name} could not be uploaded: ${e.message}`;
  }
}

/**
 * The files a message in conversation `conversationId` is about to carry. Answers the list to
 * show under the composer, `add(files)`, `ids()` (the files that arrived), `busy()` (uploads
 * still going) and `clear()`.
 */
export function pendingAttachments(conversationId) {
  const list = el('ul', { class: 'pending-files', 'aria-label': 'Files to send' });
  /** Each entry: `{file, item, id, controller, failed}` (`id` once uploaded). */
  const entries = new Set();

  const remove = (entry) => {
    entry.controller.abort();
    entries.delete(entry);
    entry.item.remove();
  };

  const start = async (file) => {
    const controller = new AbortController();
    const progress = el('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${file.name}` });
    const state = el('span', { class: 'muted', text: 'uploading…' });
    const item = el('li', { class: 'pending-file' }, el('span', { class: 'name', text: file.name }), el('span', { class: 'muted', text: formatBytes(file.size) }), progress, state);
    const entry = { file, item, id: null, controller };
    item.append(smallButton('Remove', `Remove ${file.name}`, () => remove(entry)));
    entries.add(entry);
    list.append(item);
    const fail = (text) => {
      progress.remove();
      item.classList.add('failed');
      state.remove();
      item.append(el('span', { class: 'notice error', role: 'alert', text }));
      entry.failed = true;
    };
    const limit = await uploadLimit();
    if (limit && file.size > limit) {
      fail(refusal(file.name, { code: 'file_too_large' }, limit));
      return;
    }
    const form = new FormData();
    form.append('conversation_id', conversationId);
    form.append('file', file, file.name);
    try {
      const info = await upload('/files', form, (sent, total) => (progress.value = Math.min(sent, total || file.size)), controller.signal);
      entry.id = info.id;
      progress.value = progress.max;
      state.textContent = 'ready';
    } catch (e) {
      if (e.code !== 'aborted') fail(refusal(file.name, e, limit));
    }
  };

  return {
    list,
    add(files) {
      for (const f of files) start(f);
    },
    ids: () => [...entries].filter((e) => e.id).map((e) => e.id),
    busy: () => [...entries].some((e) => !e.id && !e.failed),
    clear() {
      for (const e of [...entries]) remove(e);
    },
  };
}
