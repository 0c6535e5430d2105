// What every part of the chat client shares: the state loaded from the server and the gateway,
// the DOM nodes of the current screen (`ui`), the route in the fragment, names as shown, and
// `app`, the app-level steps (reload, sign-out) that `client.js` fills in at start, so that a
// view calls them without importing the module that imports it.

export const state = {
  me: null,
  orgs: [],
  orgId: null,
  conversations: new Map(),
  available: [],
  openId: null,
  participants: new Map(),
  /** The open conversation's `permissions`, from the server. */
  permissions: new Set(),
  presence: new Map(),
  typing: new Map(),
  gateway: null,
  connection: 'offline',
  /** conversation id → `{lastSeq, readSeq}`: unread = lastSeq − readSeq (as the server counts). */
  reads: new Map(),
  /** message id → seq, for read markers that arrive as a message id. */
  seqOf: new Map(),
  /**
   * message id → an agent's answer being written (AGENT-3): `{text, next}`, the text shown and
   * the `index` of the MESSAGE_STREAM event that continues it (null: not known, so every
   * event fetches the message again instead).
   */
  streams: new Map(),
  /** Ids of messages seen ended (not `streaming`): a late copy cannot make them stream again. */
  ended: new Set(),
  /** direct conversation id → the other person's name. */
  directNames: new Map(),
  directPending: new Set(),
  /** org id → its members (for starting direct conversations). */
  members: new Map(),
  /** Counts the client's own changes to `conversations`/`available` (see `listsChanged`). */
  listVersion: 0,
};

/** Notes a change to the conversation lists, so a reload fetched before it is not applied. */
export function listsChanged() {
  state.listVersion += 1;
}

/** The nodes of the screen on show (sidebar lists, the open conversation's log …). */
export const ui = {};

/** Filled by `client.js`: `reload()` loads orgs and conversations again and re-renders;
 * `signedOut(reason)` returns to the sign-in form; `showRoute()` draws the fragment's view again. */
export const app = {
  reload: async () => {},
  signedOut: () => {},
  showRoute: async () => {},
};

/**
 * The screen the fragment names: `#/c/<id>`, `#/sessions`, `#/security`, `#/account`, `#/inbox`,
 * `#/oauth/consent?request=<id>` (MCP-2), or home.
 */
export function route() {
  const m = location.hash.match(/^#\/c\/([0-9a-f-]{36})$/);
  if (m) return { view: 'conversation', id: m[1] };
  const consent = location.hash.match(/^#\/oauth\/consent\?request=([0-9a-f-]{36})$/);
  if (consent) return { view: 'consent', id: consent[1] };
  if (location.hash === '#/sessions') return { view: 'sessions' };
  if (location.hash === '#/security') return { view: 'security' };
  if (location.hash === '#/account') return { view: 'account' };
  if (location.hash === '#/inbox') return { view: 'inbox' };
  return { view: 'home' };
}

export function displayName(user) {
  return user?.display_name || user?.username || 'unknown';
}

/**
 * Whether `user` is an AI agent: a bot account whose username starts with `agent-` (AGENT-1;
 * the server names agents' bots so, and other bots `bot-…`).
 */
export function isAgent(user) {
  return user?.kind === 'bot' && /^agent-/.test(user.username ?? '');
}

export function conversationName(c) {
  if (c.kind === 'direct') return state.directNames.get(c.id) ?? 'Direct conversation';
  return c.name || 'Unnamed conversation';
}

/** Unread messages in `c`, or 0 while not known. */
export function unreadCount(c) {
  const r = state.reads.get(c.id);
  return r ? Math.max(0, r.lastSeq - r.readSeq) : 0;
}

/** The read state of a conversation, made from its REST object when there is none yet. */
export function readsOf(id) {
  let r = state.reads.get(id);
  if (!r) {
    const lastSeq = state.conversations.get(id)?.last_seq ?? 0;
    r = { lastSeq, readSeq: 0 };
    state.reads.set(id, r);
  }
  return r;
}
