// hotline floor pages: the CTI protocol over the WebSocket at /cti (docs/cti.md), no library.
// FloorSocket authenticates, takes a floor.snapshot once, then follows the events with
// `since`, so a reconnect (or a server restart) replays what was missed: no gap, no duplicate.
"use strict";

class FloorSocket {
  constructor({ token, onSnapshot, onEvent, onStatus, onAuth }) {
    this.token = token;
    this.onSnapshot = onSnapshot || (() => {});
    this.onEvent = onEvent || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onAuth = onAuth || (() => {});
    this.lastSeq = null; // the seq of the last event applied (or of the snapshot)
    this.pending = new Map();
    this.nextId = 1;
    this.backoff = 500;
    this.closed = false;
    this.whoami = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/cti`);
    this.ws = ws;
    this.onStatus("connecting");
    ws.onopen = () => this._start().catch((err) => this.onStatus("error", String(err.message || err)));
    ws.onmessage = (m) => this._message(JSON.parse(m.data));
    ws.onclose = () => {
      for (const [, p] of this.pending) p.reject(new Error("disconnected"));
      this.pending.clear();
      this.onStatus("down");
      if (this.closed) return;
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 8000);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }

  async _start() {
    const auth = await this.request("auth", { token: this.token });
    this.whoami = auth;
    this.onAuth(auth);
    if (this.lastSeq !== null) {
      try {
        await this.request("subscribe", { events: ["*"], since: this.lastSeq });
        this._live();
        return;
      } catch (err) {
        if (err.code !== "cti.since_too_old") throw err; // history gone: start over from a snapshot
      }
    }
    const snap = await this.request("floor.snapshot", {});
    this.lastSeq = snap.seq;
    skew = Date.parse(snap.time) - Date.now(); // a wall display's clock may be off: count in the server's
    this.onSnapshot(snap);
    await this.request("subscribe", { events: ["*"], since: snap.seq });
    this._live();
  }

  _live() {
    this.backoff = 500;
    this.onStatus("live");
  }

  _message(msg) {
    if (msg.event !== undefined && msg.seq !== undefined) {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // seen already
      this.lastSeq = msg.seq;
      this.onEvent(msg);
      return;
    }
    if (msg.event === "session.closed") return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg);
    else {
      const err = new Error(msg.error ? msg.error.message : "failed");
      err.code = msg.error && msg.error.code;
      p.reject(err);
    }
  }

  request(cmd, args) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, cmd, ...args }));
    });
  }
}

let skew = 0; // server clock minus ours, ms

// small DOM helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function seconds(sinceIso, nowMs) {
  if (!sinceIso) return "";
  const s = Math.max(0, Math.floor(((nowMs || Date.now()) + skew - Date.parse(sinceIso)) / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(100 * x)}%`;
}

window.Floor = { FloorSocket, el, seconds, pct, skew: () => skew };
