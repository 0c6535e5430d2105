// REST calls with the cookie session: the CSRF token lives only in memory (never in storage)
// and goes in X-CSRF-Token on every state-changing request. When the server has the
// access-token gate on (AUTH-9), the access code the user typed at sign-in is kept for this
// tab only (sessionStorage: it survives a reload, not the tab) and goes in X-API-Access-Token
// on every request and in the gateway's IDENTIFY and RESUME.

let csrfToken = null;
const ACCESS_CODE = 'conclave.access_code';
/** The access code when the browser refuses web storage: it then lives as long as the page. */
let memoryCode = null;

/** The access code of this tab, or null. */
export function accessCode() {
  try {
    return sessionStorage.getItem(ACCESS_CODE) ?? memoryCode;
  } catch {
    return memoryCode;
  }
}

/** Keeps `code` for this tab (null forgets it). */
export function setAccessCode(code) {
  try {
    if (code) sessionStorage.setItem(ACCESS_CODE, code);
    else sessionStorage.removeItem(ACCESS_CODE);
  } catch {
    // Storage refused: `memoryCode` keeps it.
  }
  memoryCode = code || null;
}

function withAccessCode(headers) {
  const code = accessCode();
  if (code) headers['X-API-Access-Token'] = code;
  return headers;
}

/** The server's capabilities document, or null when it cannot be read. */
async function capabilities() {
  const res = await fetch('/api/v1/capabilities', { headers: { Accept: 'application/json' } });
  if (!res.ok) return null;
  return res.json().catch(() => null);
}

/** Whether the server asks for an access code (`auth.access_token_gate` in capabilities). */
export async function accessGate() {
  const caps = await capabilities();
  return caps?.auth?.access_token_gate === true;
}

/**
 * The OpenID providers the sign-in page offers (`auth.providers` of kind `oidc`: AUTH-10), each
 * `{id, name}`, and whether the access-token gate is on (then a sign-in is started with
 * `oidcStartUrl`, which carries the access code; the provider's redirect back needs none).
 */
export async function ssoProviders() {
  const caps = await capabilities();
  if (!caps) return { providers: [], gated: false };
  return {
    providers: (caps.auth?.providers ?? []).filter((p) => p.kind === 'oidc'),
    gated: caps.auth?.access_token_gate === true,
  };
}

/** Starts an OpenID sign-in through the gate: the provider URL to navigate to. */
export async function oidcStartUrl(provider) {
  const r = await api('POST', `/auth/oidc/${encodeURIComponent(provider)}/start`);
  return r.url;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code ?? null;
    /** The invalid field on a 422: a query parameter name or a JSON pointer (`/password`). */
    this.field = body?.error?.field ?? null;
  }
}

export function setCsrfToken(token) {
  csrfToken = token ?? null;
}

/** `opts.keepalive`: the request outlives the page (read markers sent just before leaving). */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  withAccessCode(headers);
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    keepalive: opts.keepalive === true,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/**
 * A multipart POST (`form`, a FormData) that reports its progress: `onProgress(sent, total)`
 * as the body goes out (fetch cannot tell upload progress; XMLHttpRequest can). Aborting
 * `signal` cancels it. Resolves the JSON answer; rejects with an ApiError (status 0 when the
 * server was not reached or the upload was cancelled: code `network_error` or `aborted`).
 */
export function upload(path, form, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1${path}`);
    xhr.responseType = 'json';
    const headers = withAccessCode({ Accept: 'application/json' });
    if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (ev) => onProgress?.(ev.loaded, ev.lengthComputable ? ev.total : 0));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response));
    });
    const failed = (code, message) => () => reject(new ApiError(0, { error: { code, message } }));
    xhr.addEventListener('error', failed('network_error', 'the upload did not reach the server'));
    xhr.addEventListener('abort', failed('aborted', 'the upload was cancelled'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

/** A GET whose answer is saved as a file: `{blob, filename}` (from Content-Disposition). */
export async function download(path) {
  const res = await fetch(`/api/v1${path}`, { credentials: 'same-origin', headers: withAccessCode({}) });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
  return { blob: await res.blob(), filename: name ?? 'download' };
}

/** Hands a Blob to the browser as a download (a temporary object URL on an `<a download>`). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The current cookie session (`{csrf_token, user, session}`), or null when signed out. */
export async function currentSession() {
  try {
    const s = await api('GET', '/auth/session');
    setCsrfToken(s.csrf_token);
    return s;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      // A code that no longer opens the gate is forgotten, so sign-in asks again.
      if (e.code === 'access_token_required') setAccessCode(null);
      return null;
    }
    throw e;
  }
}

/** Password sign-in; answers `{user}` or `{mfa_token}` when a second factor is needed. */
export async function signIn(username, password) {
  const r = await api('POST', '/auth/login', { username, password, cookie: true });
  if (r.mfa_required) return { mfaToken: r.mfa_token };
  setCsrfToken(r.csrf_token);
  return { user: r.user };
}

export async function signInMfa(mfaToken, code) {
  const r = await api('POST', '/auth/login/mfa', { mfa_token: mfaToken, code, cookie: true });
  setCsrfToken(r.csrf_token);
  return { user: r.user };
}

export async function bootstrapAdmin(bootstrapToken, username, password) {
  const r = await api('POST', '/auth/bootstrap', {
    bootstrap_token: bootstrapToken,
    username,
    password,
    cookie: true,
  });
  setCsrfToken(r.csrf_token);
  return { user: r.user };
}

/** Sets a new password with a reset link's token (the server admin made it); nothing else. */
export async function finishPasswordReset(token, newPassword) {
  await api('POST', '/auth/password-reset', { token, new_password: newPassword });
}

export async function signOut() {
  await api('POST', '/auth/logout');
  setCsrfToken(null);
  setAccessCode(null);
}
