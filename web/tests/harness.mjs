// The harness of the browser tests: a real `conclave serve` on port 0 with a fresh SQLite data
// dir (its first admin bootstrapped over REST), Debian's Chromium driven by playwright-core,
// and REST helpers that make the users, orgs and conversations a test needs. Every test sets
// up its own people and places with these, so it passes alone and in any order.
//
//   CONCLAVE_BIN=path/to/conclave node --test --test-concurrency=1 web/tests/
//
// A test file calls `setup()` once at its top: one server and one browser for the file; each
// test's browser contexts are closed after it.

import { after, afterEach, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import jsQR from 'jsqr';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const BIN = process.env.CONCLAVE_BIN ? resolve(process.env.CONCLAVE_BIN) : join(repo, 'target/debug/conclave');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = join(here, 'screenshots');
// A preset bootstrap token has at least 32 characters (CORE-3a).
export const BOOTSTRAP = `boot-${randomBytes(16).toString('hex')}`;
export const PASSWORD = 'correct horse battery staple';

/** Polls `check` every 100 ms until it answers truthy; `context()` adds to the timeout error. */
export async function waitFor(check, what, timeoutMs = 20_000, context = () => '') {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for a base32 secret, `offset` steps from now. */
export function totp(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

/** Decodes the QR code in a PNG screenshot: the browser turns it into pixels, jsQR reads them. */
export async function decodeQr(context, png) {
  const scratch = await context.newPage();
  const { width, height, data } = await scratch.evaluate(async (b64) => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bitmap = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const img = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    return { width: img.width, height: img.height, data: Array.from(img.data) };
  }, png.toString('base64'));
  await scratch.close();
  return jsQR(Uint8ClampedArray.from(data), width, height)?.data ?? null;
}

/**
 * Answers a fake OpenAI Chat Completions request on `res` as a stream (the server's AI agents
 * call it): `delta(text)` sends one piece; `finish(pieces, usage)` sends `pieces` 150 ms apart,
 * then `usage` and `[DONE]`, and ends (a hang-up stops it).
 */
export function completionStream(res) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  const send = (data) => res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  const delta = (content) => send({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
  send({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant' } }] });
  const finish = (pieces, usage) => {
    let i = 0;
    const timer = setInterval(() => {
      if (i < pieces.length) {
        delta(pieces[i]);
        i += 1;
        return;
      }
      clearInterval(timer);
      send({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [], usage });
      send('[DONE]');
      res.end();
    }, 150);
    res.on('close', () => clearInterval(timer));
  };
  return { delta, finish };
}

/** The message log of the open conversation. */
export function log(page) {
  return page.getByRole('log');
}

/** The page's horizontal overflow in pixels (≤ 0: nothing wider than the viewport). */
export function overflowOf(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** `text` as a regular expression matching it literally. */
export function literal(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * One `conclave serve` over its own data dir. `start()` binds port 0 (the port is read from
 * the server's log line) and, unless told not to, bootstraps the first admin over REST.
 */
export class Server {
  constructor(env, args = []) {
    this.env = env;
    this.args = args;
    this.dir = mkdtempSync(join(tmpdir(), 'conclave-web-'));
    this.output = '';
    this.port = 0;
    this.child = null;
  }

  /** `args`: more arguments for `conclave serve` (`--config <file>`). */
  static async start({ env = {}, args = [], bootstrap = true } = {}) {
    const server = new Server(env, args);
    await server.listen();
    if (bootstrap) {
      const made = await server.rest('POST', '/auth/bootstrap', null, { bootstrap_token: BOOTSTRAP, username: 'root', password: PASSWORD });
      assert.equal(made.status, 201, `bootstrap: ${JSON.stringify(made.body)}`);
      server.adminToken = made.body.token;
    }
    return server;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the process on `this.port` (0 the first time: then the port bound is kept, so a
   * stopped server comes back where its clients look for it) and waits until it answers.
   */
  async listen() {
    const child = spawn(BIN, ['serve', ...this.args], {
      env: {
        // The server refuses unknown CONCLAVE_* variables (CONCLAVE_BIN is ours): pass none on.
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONCLAVE_'))),
        CONCLAVE_LISTEN: `127.0.0.1:${this.port}`,
        CONCLAVE_DATA_DIR: this.dir,
        CONCLAVE_BOOTSTRAP_TOKEN: BOOTSTRAP,
        CONCLAVE_RATE_LIMITS: 'off',
        // Warnings, and the line that names the port bound.
        RUST_LOG: 'warn,conclave=info',
        NO_COLOR: '1',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const seen = (d) => (this.output += d);
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    const exited = new Promise((ok) => child.once('exit', ok));
    const context = () => this.output.slice(-2000);
    if (this.port === 0) {
      const from = this.output.length;
      await waitFor(
        () => {
          const m = /conclave is listening.*?port\D{1,3}(\d+)/.exec(this.output.slice(from));
          if (m) this.port = Number(m[1]);
          return m || child.exitCode !== null;
        },
        'the server to name its port',
        20_000,
        context,
      );
      if (child.exitCode !== null) throw new Error(`the server exited:\n${context()}`);
    }
    await waitFor(async () => (await fetch(`${this.base}/health`)).ok, 'the server to answer /health', 20_000, context);
    this.exited = exited;
  }

  /** Stops the process (the data stays for `listen()` again). */
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await this.exited;
  }

  /** Stops the process and removes its data. */
  async destroy() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** REST from the test itself, with a bearer token: `{status, body}`. */
  async rest(method, path, token, body) {
    const res = await fetch(`${this.base}/api/v1${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * The file's server and browser, started before the first test that runs (none when a name
 * pattern selects no test of the file) and stopped after the last; the browser contexts a
 * test opens are closed after that test. `env`: more `CONCLAVE_*` settings for the server,
 * `args`: more arguments for `conclave serve`.
 * Returns the helpers.
 */
export function setup({ env = {}, args = [] } = {}) {
  const h = new Harness();
  beforeEach(async () => {
    if (h.server) return;
    mkdirSync(SHOTS, { recursive: true });
    const server = await Server.start({ env, args });
    try {
      h.browser = await launchBrowser();
    } catch (e) {
      await server.destroy();
      throw e;
    }
    h.server = server;
  });
  afterEach(() => h.closeContexts());
  after(async () => {
    await h.closeContexts();
    await h.browser?.close();
    await h.server?.destroy();
  });
  return h;
}

class Harness {
  constructor() {
    this.contexts = [];
    this.made = 0;
  }

  get base() {
    return this.server.base;
  }

  rest(method, path, token, body) {
    return this.server.rest(method, path, token, body);
  }

  /** `prefix` made unique on this server (two digits added: no name is the start of another). */
  name(prefix) {
    this.made += 1;
    return `${prefix}-${String(this.made).padStart(2, '0')}`;
  }

  /**
   * A new account (`serverAdmin`: a server admin): `{id, username, token}`, the token of a REST
   * session unless `login` is false (then null: nothing about the account is recorded yet).
   */
  async createUser(prefix, { serverAdmin = false, login = true } = {}) {
    const username = this.name(prefix);
    const made = await this.rest('POST', '/admin/users', this.server.adminToken, { username, password: PASSWORD, server_admin: serverAdmin });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    return { id: made.body.id, username, token: login ? await this.login(username) : null };
  }

  /** A bearer token of a new session of `username`. */
  async login(username) {
    const r = await this.rest('POST', '/auth/login', null, { username, password: PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.token;
  }

  /** An org `owner` creates, with `members` added as `[user, role]` pairs (role `member` if a user alone). */
  async createOrg(owner, name, members = []) {
    const org = await this.rest('POST', '/orgs', owner.token, { name });
    assert.equal(org.status, 201, JSON.stringify(org.body));
    for (const m of members) {
      const [user, role] = Array.isArray(m) ? m : [m, 'member'];
      const added = await this.rest('POST', `/admin/orgs/${org.body.id}/members`, this.server.adminToken, { user_id: user.id, role });
      assert.ok([200, 201].includes(added.status), JSON.stringify(added.body));
    }
    return org.body;
  }

  /** A group conversation in `orgId` made by `owner`, with `participants` in it. */
  async createConversation(owner, orgId, name, { visibility = 'org', participants = [] } = {}) {
    const c = await this.rest('POST', `/orgs/${orgId}/conversations`, owner.token, {
      kind: 'group',
      name,
      visibility,
      participant_ids: participants.map((p) => p.id),
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    return c.body;
  }

  /** Sends `content` (text) to conversation `id` as `user`. */
  async send(user, id, content, format = 'text') {
    const r = await this.rest('POST', `/conversations/${id}/messages`, user.token, { content, format });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  }

  /** `user` uploads `content` named `name` into conversation `id` over REST: `{status, body}`. */
  async upload(user, id, name, content, type = 'application/octet-stream') {
    const form = new FormData();
    form.append('conversation_id', id);
    form.append('file', new Blob([content], { type }), name);
    const res = await fetch(`${this.base}/api/v1/files`, { method: 'POST', headers: { Authorization: `Bearer ${user.token}` }, body: form });
    return { status: res.status, body: await res.json() };
  }

  /** A fresh browser context and page that records dialogs, page errors and console errors. */
  async newUser(viewport = { width: 1280, height: 800 }) {
    const context = await this.browser.newContext({ viewport });
    this.contexts.push(context);
    const page = await context.newPage();
    const seen = { dialogs: [], errors: [] };
    page.on('dialog', (d) => {
      seen.dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    page.on('pageerror', (e) => seen.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') seen.errors.push(m.text());
    });
    return { context, page, seen };
  }

  /** Signs `username` in on the client's sign-in form (no wait for the result). */
  async signInAs(page, username, password = PASSWORD) {
    await page.goto(`${this.base}/`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  /** A new browser context signed in as `user` (waits for the client to say so). */
  async browse(user) {
    const opened = await this.newUser();
    await this.signInAs(opened.page, user.username);
    await opened.page.getByText(`Signed in as ${user.username}`).waitFor();
    return opened;
  }

  async closeContexts() {
    const open = this.contexts.splice(0);
    await Promise.all(open.map((c) => c.close().catch(() => {})));
  }
}
