// callpath notification relay client: protocol callpath.relay.v1 (see the
// relay package documentation). An ES module, served by callpath at
// /relay/v1/client.js.
//
//   import { RelayClient } from "/relay/v1/client.js";
//   const relay = new RelayClient({ deviceId: "…", token: () => accessToken() });
//   relay.addEventListener("hello", (e) => subscribe(e.detail.sink, e.detail.sinkCredential));
//   relay.addEventListener("event", (e) => show(e.detail.event));   // a CloudEvent
//   relay.addEventListener("expired", (e) => warn(e.detail.count));
//   relay.start();
//
// The client reconnects with exponential backoff (with jitter), resumes
// after the last event it acknowledged, skips events it has seen already
// (by id) and acknowledges each event once its "event" listeners have
// returned (autoAck; set autoAck: false and call ack(seq) to acknowledge
// later). After a hello it reconnects with the relay-issued token, so the
// access token is needed only for the first connection or when the binding
// is gone. It sends a ping every pingIntervalMs and reconnects when no
// message comes within pongTimeoutMs: browsers cannot see WebSocket pings.

const SUBPROTOCOL = "callpath.relay.v1";
const CLOSE_REPLACED = 4001;
const CLOSE_BINDING_GONE = 4002;
const SEEN_IDS = 1000;

export class RelayClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.url = options.url || defaultURL();
    this.deviceId = options.deviceId || "";
    this.token = options.token;
    this.autoAck = options.autoAck !== false;
    this.minBackoffMs = options.minBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30000;
    this.pingIntervalMs = options.pingIntervalMs ?? 20000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 10000;
    this.storage = options.storage || null; // e.g. localStorage
    this.storageKey = "callpath.relay." + this.deviceId;
    const saved = this._load();
    this.lastSeq = saved.lastSeq || 0;     // highest seq acknowledged
    this.relayToken = saved.relayToken || "";
    this.relayTokenExpires = saved.relayTokenExpires || 0;
    this.hello = null;
    this.state = "idle";
    this._seen = new Set();
    this._seenOrder = [];
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._pingTimer = null;
    this._deadTimer = null;
    this._stopped = true;
  }

  // start connects and keeps connecting until stop.
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    this._connect();
  }

  // stop closes the socket and stops reconnecting.
  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
    this._stopTimers();
    if (this._ws) this._ws.close(1000, "client stopped");
    this._setState("closed");
  }

  // ack acknowledges every event up to seq.
  ack(seq) {
    if (seq <= this.lastSeq) return;
    this.lastSeq = seq;
    this._save();
    this._send({ type: "ack", seq });
  }

  // ackId acknowledges one event by its CloudEvent id.
  ackId(id) {
    this._send({ type: "ack", id });
  }

  // unbind deletes the binding: its sink answers 410 Gone from then on.
  unbind() {
    this._stopped = true;
    this._send({ type: "unbind" });
    this.relayToken = "";
    this.lastSeq = 0;
    this._save();
  }

  async _connect() {
    clearTimeout(this._timer);
    if (this._stopped) return;
    this._setState("connecting");
    let bearer = "";
    const url = new URL(this.url);
    const useRelayToken = this.relayToken && this.relayTokenExpires > Date.now() + 60000;
    try {
      if (useRelayToken) {
        bearer = this.relayToken;
      } else {
        bearer = typeof this.token === "function" ? await this.token() : this.token;
        url.searchParams.set("deviceId", this.deviceId);
      }
    } catch (err) {
      this._emit("error", { message: "getting a token failed", error: err });
      this._retry();
      return;
    }
    if (this.lastSeq > 0) url.searchParams.set("after", String(this.lastSeq));
    let ws;
    try {
      ws = new WebSocket(url.toString(), [SUBPROTOCOL, "bearer." + bearer]);
    } catch (err) {
      this._emit("error", { message: "opening the socket failed", error: err });
      this._retry();
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this._startTimers();
    };
    ws.onmessage = (m) => this._onMessage(m.data);
    ws.onclose = (c) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._stopTimers();
      this._emit("disconnect", { code: c.code, reason: c.reason });
      if (c.code === CLOSE_REPLACED) {
        // Another tab or instance with this device id took the binding;
        // taking it back would only start a tug of war.
        this._stopped = true;
        this._setState("replaced");
        return;
      }
      if (c.code === CLOSE_BINDING_GONE || (!opened && useRelayToken)) {
        // The binding is gone, or the relay refused its token: start
        // again with the access token.
        this.relayToken = "";
        this.lastSeq = 0;
        this._save();
      }
      if (this._stopped) {
        this._setState("closed");
        return;
      }
      this._retry();
    };
  }

  _retry() {
    if (this._stopped) return;
    this._setState("waiting");
    const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** this._attempt);
    this._attempt++;
    const delay = base / 2 + Math.random() * base / 2;
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _onMessage(data) {
    this._alive();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      this._emit("error", { message: "the relay sent something that is not JSON", error: err });
      return;
    }
    switch (msg.type) {
      case "hello":
        this._attempt = 0;
        this.hello = msg;
        if (msg.relayToken) {
          this.relayToken = msg.relayToken;
          this.relayTokenExpires = Date.parse(msg.relayTokenExpiresUtc) || 0;
          this._save();
        }
        this._setState("open");
        this._emit("hello", msg);
        break;
      case "event": {
        const dup = this._seen.has(msg.id);
        if (!dup) {
          this._remember(msg.id);
          this._emit("event", { seq: msg.seq, id: msg.id, event: msg.event });
        }
        if (this.autoAck || dup) this.ack(msg.seq);
        break;
      }
      case "expired":
        this._emit("expired", { count: msg.count });
        break;
      case "pong":
        break;
      default:
        // A newer relay may send more; this client ignores what it does
        // not know.
        break;
    }
  }

  _remember(id) {
    this._seen.add(id);
    this._seenOrder.push(id);
    if (this._seenOrder.length > SEEN_IDS) this._seen.delete(this._seenOrder.shift());
  }

  _startTimers() {
    this._stopTimers();
    this._pingTimer = setInterval(() => {
      this._send({ type: "ping" });
      if (!this._deadTimer) {
        this._deadTimer = setTimeout(() => {
          // Nothing came back: the connection is dead even if the
          // browser has not noticed.
          this._emit("error", { message: "no answer from the relay" });
          if (this._ws) this._ws.close(4000, "no answer");
        }, this.pongTimeoutMs);
      }
    }, this.pingIntervalMs);
  }

  _alive() {
    clearTimeout(this._deadTimer);
    this._deadTimer = null;
  }

  _stopTimers() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    this._alive();
  }

  _send(msg) {
    if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify(msg));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _load() {
    if (!this.storage) return {};
    try {
      return JSON.parse(this.storage.getItem(this.storageKey) || "{}");
    } catch {
      return {};
    }
  }

  _save() {
    if (!this.storage) return;
    this.storage.setItem(this.storageKey, JSON.stringify({
      lastSeq: this.lastSeq, relayToken: this.relayToken, relayTokenExpires: this.relayTokenExpires,
    }));
  }
}

function defaultURL() {
  const l = globalThis.location;
  if (!l) throw new Error("RelayClient: give options.url");
  return (l.protocol === "https:" ? "wss://" : "ws://") + l.host + "/relay/v1/connect";
}
