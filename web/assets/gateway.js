// Gateway protocol v1 over a WebSocket, authenticated by the session cookie (IDENTIFY without a
// token). Heartbeats at the server's interval; on a dropped socket, reconnects with exponential
// back-off and jitter (1 s base, 60 s cap) and RESUMEs; INVALID_SESSION re-identifies, and
// `onReady(fresh=true)` tells the app to reload its state over REST.

import { accessCode } from './api.js';

/** IDENTIFY and RESUME carry the tab's access code when the server has the gate on (AUTH-9). */
function withAccess(d) {
  const code = accessCode();
  return code ? { ...d, access_token: code } : d;
}

const OP = { DISPATCH: 0, HEARTBEAT: 1, IDENTIFY: 2, PRESENCE: 3, RESUME: 6, RECONNECT: 7, INVALID_SESSION: 9, HELLO: 10, ACK: 11 };
const CLIENT = 'conclave-web/0.1.0';
/** Close codes after which reconnecting with the same credential cannot help. */
const FATAL = new Set([4003, 4004, 4012, 4014]);

export class Gateway {
  constructor({ onDispatch, onReady, onStatus, onSignedOut }) {
    this.onDispatch = onDispatch;
    this.onReady = onReady;
    this.onStatus = onStatus;
    this.onSignedOut = onSignedOut;
    this.sessionId = null;
    this.seq = null;
    this.attempt = 0;
    this.stopped = false;
  }

  connect() {
    this.stopped = false;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/gateway?v=1`);
    this.ws = ws;
    this.onStatus('connecting');
    ws.onmessage = (ev) => this.receive(ws, JSON.parse(ev.data));
    ws.onclose = (ev) => this.closed(ws, ev.code);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.ws?.close(1000);
  }

  send(op, d) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op, d }));
  }

  setPresence(status) {
    this.send(OP.PRESENCE, { status });
  }

  identify() {
    this.sessionId = null;
    this.seq = null;
    this.send(OP.IDENTIFY, withAccess({ client: CLIENT, protocol_version: 1 }));
  }

  receive(ws, frame) {
    if (ws !== this.ws) return;
    switch (frame.op) {
      case OP.HELLO: {
        const every = frame.d.heartbeat_interval_ms;
        clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.send(OP.HEARTBEAT, this.seq), every);
        if (this.sessionId) this.send(OP.RESUME, withAccess({ session_id: this.sessionId, seq: this.seq ?? 0 }));
        else this.identify();
        break;
      }
      case OP.DISPATCH:
        if (frame.s !== null && frame.s !== undefined) this.seq = frame.s;
        if (frame.t === 'READY') {
          this.sessionId = frame.d.session_id;
          this.attempt = 0;
          this.onStatus('online');
          this.onReady(frame.d, true);
        } else if (frame.t === 'RESUMED') {
          this.attempt = 0;
          this.onStatus('online');
          this.onReady(frame.d, false);
        } else {
          this.onDispatch(frame.t, frame.d);
        }
        break;
      case OP.HEARTBEAT:
        this.send(OP.HEARTBEAT, this.seq);
        break;
      case OP.RECONNECT:
        ws.close(4000);
        break;
      case OP.INVALID_SESSION:
        this.identify();
        break;
      default:
        break;
    }
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    if (this.stopped) return;
    if (FATAL.has(code)) {
      this.onStatus('offline');
      this.onSignedOut(code);
      return;
    }
    const delay = Math.min(60_000, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.onStatus('reconnecting');
    setTimeout(() => this.connect(), delay);
  }
}
