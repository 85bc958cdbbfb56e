// callpath softphone: the CAMARA WebRTC APIs from a browser.
//
//   sign in:  POST /demo/token (dev issuer) → POST webrtc-registration
//             /sessions (this browser is a device) → relay WebSocket (an
//             HTTP sink for the events) → subscribe session-invitation.
//   call:     RTCPeerConnection offer (complete: no trickle ICE in the
//             API) → POST webrtc-call-handling /sessions → subscribe
//             session-status for it → the answer arrives in an event.
//   called:   session-invitation (with the gateway's offer) → PUT Ringing
//             → Answer: PUT Connected with our answer; Decline: DELETE.
//   DTMF:     RFC 4733 through RTCDTMFSender; hang up: DELETE.
//
// window.callpathDemo exposes the phone to scripts (the browser test).

import { RelayClient } from "/relay/v1/client.js";

const EVENT = "org.camaraproject.webrtc-events.v0.";
const TERMINAL = new Set(["Terminated", "SessionCancelled", "Declined", "Failed", "NoAnswer", "NotReachable", "Busy"]);

const $ = (id) => document.getElementById(id);

function log(...parts) {
  const line = new Date().toISOString().slice(11, 23) + " " + parts.map((p) => typeof p === "string" ? p : JSON.stringify(p)).join(" ");
  const el = $("log");
  el.textContent += line + "\n";
  el.scrollTop = el.scrollHeight;
  console.log(line);
}

class Softphone {
  constructor(basePath) {
    this.paths = {
      registration: basePath + "/webrtc-registration/v0.3",
      events: basePath + "/webrtc-events/v0.2",
      calls: basePath + "/webrtc-call-handling/v0.3",
    };
    this.status = "signed out";
    this.events = []; // every CloudEvent received, for the UI and tests
    this.session = null; // {id, role, offer, remoteSet}
  }

  async api(method, path, body, headers = {}) {
    const h = { Authorization: "Bearer " + this.token, "x-correlator": "demo-" + crypto.randomUUID(), ...headers };
    if (body !== undefined) h["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${data ? data.code + " " + data.message : ""}`);
    return data;
  }

  setStatus(s) {
    this.status = s;
    $("status").textContent = s;
    log("status", s);
  }

  async signIn(number) {
    const res = await fetch("/demo/token", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ phoneNumber: number }) });
    const tok = await res.json();
    if (!res.ok) throw new Error(tok.error);
    this.token = tok.access_token;
    this.number = number;
    this.deviceId = localStorage.getItem("callpath.demo.device") || crypto.randomUUID();
    localStorage.setItem("callpath.demo.device", this.deviceId);
    const reg = await this.api("POST", this.paths.registration + "/sessions", { deviceId: this.deviceId });
    this.registrationId = reg.registrationId;
    log("registered", reg);

    this.relay = new RelayClient({ deviceId: this.deviceId, token: () => this.token });
    const hello = new Promise((resolve) => this.relay.addEventListener("hello", (e) => resolve(e.detail), { once: true }));
    this.relay.addEventListener("event", (e) => this.onEvent(e.detail.event));
    this.relay.addEventListener("expired", (e) => log("relay: events expired unread", e.detail));
    this.relay.start();
    const h = await hello;
    this.sink = h.sink;
    this.sinkCredential = h.sinkCredential;
    await this.subscribe("session-invitation", { registrationId: this.registrationId });
    this.setStatus("ready");
  }

  // subscribe asks for the events of type at the relay's sink; a
  // session-status subscription also gets the session's state now
  // (initialEvent), as the call may have moved on before it existed.
  async subscribe(type, detail) {
    const sub = await this.api("POST", this.paths.events + "/subscriptions", {
      protocol: "HTTP", sink: this.sink, sinkCredential: this.sinkCredential,
      types: [EVENT + type], config: { subscriptionDetail: detail, initialEvent: type === "session-status" },
    });
    log("subscribed", type, sub.id);
    return sub;
  }

  onEvent(ce) {
    this.events.push(ce);
    log("event", ce.type.slice(EVENT.length), ce.data.status || "", ce.data.reason || "");
    if (ce.type === EVENT + "session-invitation") this.onInvitation(ce.data);
    if (ce.type === EVENT + "session-status") this.onStatus(ce.data);
  }

  async media() {
    this.local = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.pc = new RTCPeerConnection();
    for (const track of this.local.getAudioTracks()) this.sender = this.pc.addTrack(track, this.local);
    this.pc.ontrack = (e) => this.listen(e.streams[0] || new MediaStream([e.track]));
    this.pc.onconnectionstatechange = () => log("webrtc", this.pc.connectionState);
  }

  // listen plays the far end and measures it (hears).
  listen(stream) {
    $("remote").srcObject = stream; // Chrome feeds WebAudio from a remote stream only while it plays somewhere
    this.audio = this.audio || new AudioContext();
    this.audio.resume();
    this.analyser = this.audio.createAnalyser();
    this.analyser.fftSize = 2048;
    this.audio.createMediaStreamSource(stream).connect(this.analyser);
  }

  // hears returns the share of the far end's power within ±1 bin of freq
  // (0 when nothing is heard).
  hears(freq) {
    if (!this.analyser) return 0;
    const db = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(db);
    const bin = Math.round(freq / (this.audio.sampleRate / this.analyser.fftSize));
    let total = 0, near = 0;
    db.forEach((v, i) => {
      const p = Number.isFinite(v) ? Math.pow(10, v / 10) : 0;
      total += p;
      if (Math.abs(i - bin) <= 1) near += p;
    });
    return total > 0 ? near / total : 0;
  }

  async complete(description) {
    await this.pc.setLocalDescription(description);
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise((resolve) => {
        const done = () => { if (this.pc.iceGatheringState === "complete") resolve(); };
        this.pc.addEventListener("icegatheringstatechange", done);
        setTimeout(resolve, 3000); // enough host candidates by then
      });
    }
    return this.pc.localDescription.sdp;
  }

  async call(number) {
    await this.media();
    const offer = await this.complete(await this.pc.createOffer());
    const s = await this.api("POST", this.paths.calls + "/sessions", {
      originatorAddress: "tel:" + this.number, receiverAddress: "tel:" + number, offer: { sdp: offer },
    }, { registrationId: this.registrationId });
    this.session = { id: s.mediaSessionId, role: "originator", remoteSet: false };
    this.setStatus(s.status);
    await this.subscribe("session-status", { registrationId: this.registrationId, sessionId: s.mediaSessionId });
  }

  async onInvitation(d) {
    if (this.session) {
      log("busy: declining", d.mediaSessionId);
      await this.api("DELETE", this.paths.calls + "/sessions/" + d.mediaSessionId);
      return;
    }
    this.session = { id: d.mediaSessionId, role: "receiver", offer: d.offer.sdp, remoteSet: false };
    $("caller").textContent = d.originatorAddress;
    $("incoming").hidden = false;
    await this.subscribe("session-status", { registrationId: this.registrationId, sessionId: d.mediaSessionId });
    this.onStatus(await this.api("PUT", this.paths.calls + "/sessions/" + d.mediaSessionId + "/status", { status: "Ringing" }));
  }

  async answer() {
    const s = this.session;
    $("incoming").hidden = true;
    await this.media();
    await this.pc.setRemoteDescription({ type: "offer", sdp: s.offer });
    s.remoteSet = true;
    const answer = await this.complete(await this.pc.createAnswer());
    this.onStatus(await this.api("PUT", this.paths.calls + "/sessions/" + s.id + "/status", { status: "Connected", answer: { sdp: answer } }));
  }

  async onStatus(d) {
    const s = this.session;
    if (!s || d.mediaSessionId !== s.id) return;
    // Events and PUT answers carry sequenceNumber (none: 0, the state the
    // call was announced in): an older state, such as the initial event
    // arriving after our own PUT's answer, is not shown again.
    const seq = d.sequenceNumber || 0;
    if (s.seq !== undefined && seq <= s.seq) return;
    s.seq = seq;
    if (s.role === "originator" && d.answer && !s.remoteSet) {
      s.remoteSet = true; // the 200 repeats the 183's answer
      await this.pc.setRemoteDescription({ type: "answer", sdp: d.answer.sdp });
    }
    if (d.status !== this.status) this.setStatus(d.status);
    if (TERMINAL.has(d.status)) this.reset();
  }

  async hangUp() {
    if (!this.session) return;
    const id = this.session.id;
    this.reset();
    await this.api("DELETE", this.paths.calls + "/sessions/" + id);
  }

  dtmf(digits) {
    if (this.sender && this.sender.dtmf) this.sender.dtmf.insertDTMF(digits, 100, 70);
  }

  reset() {
    $("incoming").hidden = true;
    this.session = null;
    if (this.pc) this.pc.close();
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    this.pc = null;
    this.sender = null;
  }
}

const config = await (await fetch("/demo/config.json")).json();
const phone = new Softphone(config.basePath);
window.callpathDemo = phone;

const guard = (fn) => async () => { try { await fn(); } catch (e) { log("error", e.message); phone.setStatus("error: " + e.message); } };
$("signinButton").onclick = guard(async () => { await phone.signIn($("me").value.trim()); $("phone").disabled = false; $("signin").disabled = true; });
$("callButton").onclick = guard(() => phone.call($("dial").value.trim()));
$("hangupButton").onclick = guard(() => phone.hangUp());
$("answerButton").onclick = guard(() => phone.answer());
$("declineButton").onclick = guard(() => phone.hangUp());
for (const d of "123456789*0#") {
  const b = document.createElement("button");
  b.textContent = d;
  b.onclick = () => phone.dtmf(d);
  $("keypad").appendChild(b);
}
log("loaded: sign in to register this browser");
