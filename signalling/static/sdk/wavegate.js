// Wavegate JavaScript SDK: browser WebRTC calls to SIP through a Wavegate server.
// A plain ES module (no build step); JSDoc types here, the same API as TypeScript in
// wavegate.d.ts. The call API is the seed's: createSession({urlServer, sipOptions}) with
// .on(SESSION_STATUS.X, fn), session.createCall({...}) with .on(CALL_STATUS.X, fn), call(),
// answer(), hangup(), hold(), unhold(), sendDTMF(), getStats(cb). Importing the module also
// installs a `Flashphoner` global with the same functions so seed-style pages run unchanged.
// The wire protocol is documented in docs/websocket-api.md.

/** Session states. @enum {string} */
export const SESSION_STATUS = Object.freeze({
  PENDING: 'PENDING', ESTABLISHED: 'ESTABLISHED', REGISTERED: 'REGISTERED',
  UNREGISTERED: 'UNREGISTERED', DISCONNECTED: 'DISCONNECTED', FAILED: 'FAILED',
  INCOMING_CALL: 'INCOMING_CALL',
});

/** Call states (the SIP layer's). @enum {string} */
export const CALL_STATUS = Object.freeze({
  NEW: 'NEW', PENDING: 'PENDING', TRYING: 'TRYING', RING: 'RING', RING_MEDIA: 'RING_MEDIA',
  SESSION_PROGRESS: 'SESSION_PROGRESS', ESTABLISHED: 'ESTABLISHED', HOLD: 'HOLD', BUSY: 'BUSY',
  FINISH: 'FINISH', FAILED: 'FAILED',
});

/** Device kinds for getMediaDevices. @enum {string} */
export const MEDIA_DEVICE_KIND = Object.freeze({ INPUT: 'input', OUTPUT: 'output', ALL: 'all' });

/** DTMF transport. @enum {string} */
export const DTMF_TYPE = Object.freeze({ RFC2833: 'RFC2833', INFO: 'INFO' });

const FINAL = new Set([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY]);
const ICE_GATHER_MS = 5000;

/** Raised for API misuse and missing browser features; `name` is 'WavegateError'. */
export class WavegateError extends Error {
  constructor(message) { super(message); this.name = 'WavegateError'; }
}

class Emitter {
  constructor() { this._handlers = new Map(); }
  /**
   * Subscribes to a status (or 'error'); returns this for chaining, as in the seed.
   * @param {string} event @param {(obj: any) => void} fn
   */
  on(event, fn) {
    if (typeof fn !== 'function') throw new WavegateError(`on(${event}): handler is not a function`);
    if (!this._handlers.has(event)) this._handlers.set(event, []);
    this._handlers.get(event).push(fn);
    return this;
  }
  _emit(event, arg) {
    for (const fn of this._handlers.get(event) || []) {
      try { fn(arg); } catch (e) { console.error(`wavegate: ${event} handler threw`, e); }
    }
  }
}

/** ws(s)://host[:port]/ws from an http(s)/ws(s) URL or host; defaults to the page's server. */
function wsUrl(urlServer) {
  const base = typeof location !== 'undefined' ? location.href : 'http://127.0.0.1:8080/';
  const u = new URL(urlServer || base, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new WavegateError(`urlServer: unsupported scheme ${u.protocol}`);
  if (!urlServer || u.pathname === '/' || u.pathname === '') u.pathname = '/ws';
  u.hash = '';
  return u.toString();
}

function requireApi(ok, what) {
  if (!ok) throw new WavegateError(`${what} is not available in this browser`);
}

/**
 * A connection to the server with one SIP account.
 */
export class Session extends Emitter {
  /** @param {{urlServer?: string, sipOptions?: object, appKey?: string, autoStartCalls?: boolean,
   *   startCallOptions?: object}} options */
  constructor(options = {}) {
    super();
    requireApi(typeof WebSocket !== 'undefined', 'WebSocket');
    this._options = options;
    this._status = SESSION_STATUS.PENDING;
    this._cause = '';
    /** @type {Map<string, Call>} */
    this._calls = new Map();
    this._ws = new WebSocket(wsUrl(options.urlServer));
    this._ws.onopen = () => this._send(Object.assign({ type: 'connect', sipOptions: options.sipOptions || {} },
      options.appKey ? { appKey: String(options.appKey) } : {}));
    this._ws.onmessage = e => this._onMessage(e.data);
    this._ws.onclose = () => {
      for (const c of this._calls.values()) c._setStatus(CALL_STATUS.FAILED, 'Session closed');
      this._calls.clear();
      if (this._status !== SESSION_STATUS.FAILED) this._setStatus(SESSION_STATUS.DISCONNECTED, this._wsError || 'Connection closed');
    };
    this._ws.onerror = () => { this._wsError = 'WebSocket error'; };
  }
  /** @returns {string} the last session status */
  status() { return this._status; }
  /** @returns {string} the cause of the last status */
  cause() { return this._cause; }
  id() { return this._ws.url; }
  /** @returns {Call[]} */
  getCalls() { return [...this._calls.values()]; }
  /** Sends a raw protocol message (for tests and extensions). @param {object} msg */
  sendRaw(text) { this._ws.send(text); }
  _send(msg) {
    if (this._ws.readyState !== WebSocket.OPEN) throw new WavegateError(`session is not open (${this._status})`);
    this._ws.send(JSON.stringify(msg));
  }
  _setStatus(status, cause) {
    this._status = status;
    this._cause = cause || '';
    this._emit(status, this);
  }
  _onMessage(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (m.type === 'session') {
      this._setStatus(m.status, m.cause);
    } else if (['call', 'sdp', 'reoffer', 'dtmf', 'message', 'transfer'].includes(m.type)) {
      const c = this._calls.get(m.callId);
      if (c) c._onMessage(m);
    } else if (m.type === 'incoming') {
      const call = new Call(this, { callee: m.caller, caller: m.caller }, m.callId, m.sdp);
      this._calls.set(call.id(), call);
      call._status = CALL_STATUS.RING;
      call._cause = 'Incoming call';
      this._emit(SESSION_STATUS.INCOMING_CALL, call);
    } else if (m.type === 'startCall') {
      // The REST API (call/startup with this session) asks the page to place a call. Handlers of
      // START_CALL run first (they may attach displays, constraints and status handlers); the call
      // is then placed unless one of them already did, or the session has autoStartCalls: false.
      const call = new Call(this, { callee: m.callee, ...(this._options.startCallOptions || {}) }, m.callId);
      this._calls.set(call.id(), call);
      this._emit('START_CALL', call);
      if (this._options.autoStartCalls !== false && call.status() === CALL_STATUS.NEW) call.call();
    } else if (m.type === 'error') {
      this._emit('error', { reason: m.reason });
    } else if (m.type === 'pong') {
      this._emit('pong', this);
    }
  }
  /**
   * Creates an outgoing call (not placed until call()).
   * @param {{callee: string, visibleName?: string, localVideoDisplay?: HTMLElement,
   *   remoteVideoDisplay?: HTMLElement, constraints?: MediaStreamConstraints,
   *   receiveAudio?: boolean, receiveVideo?: boolean}} options
   * @returns {Call}
   */
  createCall(options) {
    if (!options || !options.callee) throw new WavegateError('createCall: callee is required');
    const call = new Call(this, options);
    this._calls.set(call.id(), call);
    return call;
  }
  /** Keepalive; the server answers with a 'pong' event. */
  ping() { this._send({ type: 'ping' }); }
  /** Hangs up every call and closes the session. */
  disconnect() {
    for (const c of this._calls.values()) { try { c.hangup(); } catch { /* closing anyway */ } }
    this._ws.close(1000, 'disconnect');
  }
}

let nextCall = 1;

/** One call of a session. */
export class Call extends Emitter {
  constructor(session, options, incomingId = null, incomingOffer = null) {
    super();
    this._session = session;
    this._options = options;
    this._id = incomingId || `c${Date.now().toString(36)}${(nextCall++).toString(36)}`;
    this._offer = incomingOffer;
    this._status = CALL_STATUS.NEW;
    this._cause = '';
    /** @type {RTCPeerConnection|null} */
    this._pc = null;
    /** @type {MediaStream|null} */
    this._local = null;
    this._remote = null;
    this._audioEl = null;
  }
  id() { return this._id; }
  status() { return this._status; }
  cause() { return this._cause; }
  callee() { return this._options.callee; }
  /** The underlying RTCPeerConnection (null before call()). */
  peerConnection() { return this._pc; }
  _setStatus(status, cause) {
    if (FINAL.has(this._status)) return;
    this._status = status;
    this._cause = cause || '';
    if (FINAL.has(status)) this._release();
    this._emit(status, this);
  }
  _release() {
    this._session._calls.delete(this._id);
    if (this._local) this._local.getTracks().forEach(t => t.stop());
    if (this._pc) this._pc.close();
    if (this._audioEl) { this._audioEl.srcObject = null; this._audioEl.remove(); }
  }
  // The server's messages for this call are handled one after the other, in order: a re-offer
  // that arrives while the answer to our offer is still being applied (the SIP side can answer
  // within a millisecond) waits for it instead of finding the peer connection mid-negotiation.
  _onMessage(m) {
    this._inbox = (this._inbox || Promise.resolve()).then(() => this._handleMessage(m)).catch(() => { /* reported inside */ });
    return this._inbox;
  }
  async _handleMessage(m) {
    if (m.type === 'call') {
      this._setStatus(m.status, m.cause);
    } else if (m.type === 'sdp') {
      try {
        await this._pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      } catch (e) {
        this._failLocally(`cannot apply the server's answer: ${e.message}`);
      }
    } else if (m.type === 'reoffer') {
      await this._reanswer(m.sdp);
    } else if (m.type === 'dtmf') {
      this._emit('DTMF', { digit: m.digit, type: m.dtmfType });
    } else if (m.type === 'message') {
      this._emit('MESSAGE', { text: m.text, contentType: m.contentType });
    } else if (m.type === 'transfer') {
      this._emit('TRANSFER', { status: m.status, code: m.code, cause: m.cause });
    }
  }
  // The server renegotiates a call in progress (same media, ICE and DTLS; e.g. it asks for
  // narrowband Opus when the far end is a narrowband phone): apply its offer and answer it, with
  // nothing asked of the application. A peer connection busy with a negotiation of the page's
  // own (hold, resume) leaves the offer unanswered (the server withdraws it after 10 s and the call goes on as it was);
  // a failure is reported as a session 'error' event and the call goes on too.
  async _reanswer(sdp) {
    const pc = this._pc;
    if (!pc || pc.signalingState !== 'stable' || FINAL.has(this._status)) return;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      this._session._send({ type: 'answer', callId: this._id, sdp: pc.localDescription.sdp });
    } catch (e) {
      try { if (pc.signalingState === 'have-remote-offer') await pc.setLocalDescription({ type: 'rollback' }); } catch { /* closed */ }
      this._session._emit('error', { reason: `call ${this._id}: cannot answer the server's re-offer: ${e.message || e}` });
    }
  }
  _failLocally(cause) {
    try { this._session._send({ type: 'hangup', callId: this._id }); } catch { /* session gone */ }
    this._setStatus(CALL_STATUS.FAILED, cause);
  }
  _renderRemote(track) {
    const stream = this._remote || (this._remote = new MediaStream());
    stream.addTrack(track);
    const display = this._options.remoteVideoDisplay;
    let el = display && display.querySelector && display.querySelector('video,audio');
    if (!el) {
      // Chromium decodes received audio only when something plays it.
      el = document.createElement(this._remoteElementKind(track));
      el.autoplay = true;
      el.playsInline = true;
      if (display && display.appendChild) display.appendChild(el);
      else { el.style.display = 'none'; document.body.appendChild(el); this._audioEl = el; }
    }
    el.srcObject = stream;
    const p = el.play && el.play();
    if (p && p.catch) p.catch(() => { /* autoplay policy: the user's next click plays it */ });
  }
  // Video calls: a remoteVideoDisplay gets a <video> element (it plays the audio too) as soon as
  // video is expected (receiveVideo, or a camera in the constraints), whichever track arrives
  // first; an <audio> element there would never show the video track added to its stream.
  _remoteElementKind(track) {
    const o = this._options;
    const video = track.kind === 'video' || !!o.receiveVideo || !!(o.constraints && o.constraints.video);
    return video && (track.kind === 'video' || o.remoteVideoDisplay) ? 'video' : 'audio';
  }
  /** Places the call: microphone, offer, `call` to the server. */
  async call() {
    if (this._status !== CALL_STATUS.NEW) throw new WavegateError(`call(): the call is ${this._status}`);
    requireApi(typeof RTCPeerConnection !== 'undefined', 'RTCPeerConnection');
    requireApi(typeof navigator !== 'undefined' && navigator.mediaDevices && navigator.mediaDevices.getUserMedia, 'navigator.mediaDevices.getUserMedia');
    this._setStatus(CALL_STATUS.PENDING, 'Preparing media');
    try {
      const c = this._options.constraints || { audio: true, video: false };
      this._local = await navigator.mediaDevices.getUserMedia(c);
      const local = this._options.localVideoDisplay;
      if (local && this._local.getVideoTracks().length) {
        const v = document.createElement('video');
        v.autoplay = true; v.muted = true; v.playsInline = true; v.srcObject = this._local;
        local.appendChild(v);
      }
      const pc = this._pc = new RTCPeerConnection({ iceServers: [] });
      pc.ontrack = e => this._renderRemote(e.track);
      for (const t of this._local.getTracks()) pc.addTransceiver(t, { direction: 'sendrecv', streams: [this._local] });
      if (this._options.receiveVideo && !this._local.getVideoTracks().length) pc.addTransceiver('video', { direction: 'recvonly' });
      if (this._options.videoCodec) preferVideoCodec(pc, this._options.videoCodec);
      await pc.setLocalDescription(await pc.createOffer());
      // The media plane is ICE-lite without trickle: send the offer with its candidates.
      await this._gathered();
      if (FINAL.has(this._status)) return;
      this._session._send({ type: 'call', callId: this._id, callee: this._options.callee,
        visibleName: this._options.visibleName || '', sdp: pc.localDescription.sdp });
    } catch (e) {
      this._setStatus(CALL_STATUS.FAILED, e.message || String(e));
    }
  }
  /** Who calls (incoming calls). */
  caller() { return this._options.caller || ''; }
  /** Whether the server offered this call to the page. */
  isIncoming() { return this._offer !== null; }
  /**
   * Answers an incoming call (SESSION_STATUS.INCOMING_CALL): microphone, the server's offer,
   * our answer with all candidates. @param {{constraints?: MediaStreamConstraints,
   * remoteVideoDisplay?: HTMLElement}} [options]
   */
  async answer(options = {}) {
    if (this._offer === null) throw new WavegateError('answer(): not an incoming call');
    if (this._pc) throw new WavegateError('answer(): already answered');
    requireApi(typeof RTCPeerConnection !== 'undefined', 'RTCPeerConnection');
    requireApi(typeof navigator !== 'undefined' && navigator.mediaDevices && navigator.mediaDevices.getUserMedia, 'navigator.mediaDevices.getUserMedia');
    Object.assign(this._options, options);
    try {
      this._local = await navigator.mediaDevices.getUserMedia(this._options.constraints || { audio: true, video: false });
      const pc = this._pc = new RTCPeerConnection({ iceServers: [] });
      pc.ontrack = e => this._renderRemote(e.track);
      await pc.setRemoteDescription({ type: 'offer', sdp: this._offer });
      for (const t of this._local.getTracks()) {
        const tr = pc.getTransceivers().find(x => x.receiver.track.kind === t.kind && !x.sender.track);
        if (!tr) continue;
        await tr.sender.replaceTrack(t);
        tr.sender.setStreams(this._local);
        tr.direction = 'sendrecv';
      }
      await pc.setLocalDescription(await pc.createAnswer());
      await this._gathered();
      this._session._send({ type: 'answer', callId: this._id, sdp: pc.localDescription.sdp });
    } catch (e) {
      this._failLocally(e.message || String(e));
    }
  }
  _gathered() {
    const pc = this._pc;
    return new Promise((res, rej) => {
      if (pc.iceGatheringState === 'complete') return res();
      const t = setTimeout(() => rej(new WavegateError(`ICE gathering did not finish within ${ICE_GATHER_MS} ms`)), ICE_GATHER_MS);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') { clearTimeout(t); res(); }
      });
    });
  }
  hangup() {
    if (FINAL.has(this._status)) return;
    if (this._status === CALL_STATUS.NEW) return this._setStatus(CALL_STATUS.FINISH, 'Not placed');
    this._session._send({ type: 'hangup', callId: this._id });
  }
  hold() { this._session._send({ type: 'hold', callId: this._id }); }
  unhold() { this._session._send({ type: 'unhold', callId: this._id }); }
  /**
   * Sends DTMF digits (0-9 * # A-D). @param {string} digits @param {string} [type] DTMF_TYPE
   */
  sendDTMF(digits, type = DTMF_TYPE.RFC2833) {
    if (!/^[0-9*#A-D]{1,32}$/.test(String(digits))) throw new WavegateError(`sendDTMF: ${JSON.stringify(digits)} is not 1-32 DTMF digits (0-9 * # A-D)`);
    if (type !== DTMF_TYPE.RFC2833 && type !== DTMF_TYPE.INFO) throw new WavegateError(`sendDTMF: type must be RFC2833 or INFO`);
    this._session._send({ type: 'sendDTMF', callId: this._id, digits: String(digits), dtmfType: type });
  }
  /**
   * Blind transfer (SIP REFER) of the far end to `target` (a user, user@host or sip: URI).
   * Progress comes as 'TRANSFER' events {status: accepted|rejected|progress|succeeded|failed,
   * code, cause}; on success the SIP side ends the call (FINISH). @param {string} target
   */
  transfer(target) {
    if (!target || typeof target !== 'string') throw new WavegateError('transfer: a target is required');
    this._session._send({ type: 'transfer', callId: this._id, target });
  }
  /**
   * Sends a text to the far end (in-dialog SIP MESSAGE); texts from it come as 'MESSAGE'
   * events {text, contentType}. @param {string} text
   */
  sendMessage(text) {
    if (typeof text !== 'string' || !text) throw new WavegateError('sendMessage: a non-empty text is required');
    this._session._send({ type: 'sendMessage', callId: this._id, text });
  }
  /**
   * Switches the call's microphone (or camera) to `deviceId`, or to the next device of that
   * kind when none is given; resolves to the new device id. Fails with a WavegateError naming
   * what is missing (no call media yet, one device only, no RTCRtpSender.replaceTrack).
   */
  async _switch(kind, deviceId) {
    const what = kind === 'audio' ? 'switchMic' : 'switchCam';
    requireApi(typeof navigator !== 'undefined' && navigator.mediaDevices && navigator.mediaDevices.enumerateDevices, 'navigator.mediaDevices.enumerateDevices');
    requireApi(typeof RTCRtpSender !== 'undefined' && typeof RTCRtpSender.prototype.replaceTrack === 'function', 'RTCRtpSender.replaceTrack');
    if (!this._pc || !this._local) throw new WavegateError(`${what}: the call has no local media yet`);
    const old = this._local.getTracks().find(t => t.kind === kind);
    const sender = this._pc.getSenders().find(x => x.track && x.track.kind === kind);
    if (!old || !sender) throw new WavegateError(`${what}: the call sends no ${kind}`);
    const current = old.getSettings ? old.getSettings().deviceId : undefined;
    if (!deviceId) {
      const ids = (await navigator.mediaDevices.enumerateDevices())
        .filter(d => d.kind === (kind === 'audio' ? 'audioinput' : 'videoinput'))
        .map(d => d.deviceId).filter((id, i, a) => id && id !== 'default' && id !== 'communications' && a.indexOf(id) === i);
      const others = ids.filter(id => id !== current);
      if (!others.length) throw new WavegateError(`${what}: no other ${kind === 'audio' ? 'microphone' : 'camera'} to switch to`);
      deviceId = others[(ids.indexOf(current) + 1) % others.length] || others[0];
    }
    const base = (this._options.constraints || {})[kind];
    const c = Object.assign({}, typeof base === 'object' ? base : {}, { deviceId: { exact: deviceId } });
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: c });
    const track = stream.getTracks()[0];
    track.enabled = old.enabled; // a muted call stays muted
    await sender.replaceTrack(track);
    this._local.removeTrack(old);
    old.stop();
    this._local.addTrack(track);
    return (track.getSettings && track.getSettings().deviceId) || deviceId;
  }
  /** Switches the microphone during a call. @param {string} [deviceId] @returns {Promise<string>} the new device id */
  switchMic(deviceId) { return this._switch('audio', deviceId); }
  /** Switches the camera during a call. @param {string} [deviceId] @returns {Promise<string>} the new device id */
  switchCam(deviceId) { return this._switch('video', deviceId); }
  _setTracks(kind, enabled) {
    if (this._local) this._local.getTracks().filter(t => t.kind === kind).forEach(t => { t.enabled = enabled; });
  }
  muteAudio() { this._setTracks('audio', false); }
  unmuteAudio() { this._setTracks('audio', true); }
  isAudioMuted() { return !!this._local && this._local.getAudioTracks().every(t => !t.enabled); }
  muteVideo() { this._setTracks('video', false); }
  unmuteVideo() { this._setTracks('video', true); }
  /**
   * Chooses the audio output device (Chromium only: HTMLMediaElement.setSinkId).
   * @param {string} id @returns {Promise<void>}
   */
  async setAudioOutputId(id) {
    const el = this._audioEl || (this._options.remoteVideoDisplay && this._options.remoteVideoDisplay.querySelector('video,audio'));
    if (!el) throw new WavegateError('setAudioOutputId: no remote media element yet');
    if (typeof el.setSinkId !== 'function') throw new WavegateError('setAudioOutputId: this browser cannot choose the audio output (no setSinkId)');
    await el.setSinkId(id);
  }
  /**
   * WebRTC statistics in the seed's shape.
   * @param {(stats: {outboundStream: {audioStats?: object, videoStats?: object},
   *   inboundStream: {audioStats?: object, videoStats?: object}}) => void} cb
   */
  getStats(cb) {
    const out = { outboundStream: {}, inboundStream: {} };
    if (!this._pc) { cb(out); return Promise.resolve(out); }
    return this._pc.getStats().then(report => {
      report.forEach(v => {
        const key = v.kind === 'video' ? 'videoStats' : 'audioStats';
        if (v.type === 'outbound-rtp') {
          out.outboundStream[key] = { bytesSent: v.bytesSent, packetsSent: v.packetsSent, framesEncoded: v.framesEncoded };
        } else if (v.type === 'inbound-rtp') {
          out.inboundStream[key] = { bytesReceived: v.bytesReceived, packetsReceived: v.packetsReceived,
            packetsLost: v.packetsLost, jitter: v.jitter, audioLevel: v.audioLevel, totalAudioEnergy: v.totalAudioEnergy,
            framesDecoded: v.framesDecoded };
        }
      });
      cb(out);
      return out;
    });
  }
}

/**
 * Opens a session. @param {{urlServer?: string, sipOptions?: object}} options @returns {Session}
 */
/**
 * Limits the video transceivers' offer to one codec ('VP8' or 'H264'; H.264 as constrained
 * baseline 42e01f with packetization-mode=1, the format SIP video phones decode). The media
 * plane answers video in the browser's order and the SIP side may pick another format of the
 * offer, so one format keeps both sides on the same one. Needs setCodecPreferences.
 */
function preferVideoCodec(pc, codec) {
  const name = String(codec).toUpperCase();
  if (!['VP8', 'H264'].includes(name)) throw new WavegateError(`videoCodec: ${codec} is not VP8 or H264`);
  requireApi(typeof RTCRtpTransceiver !== 'undefined' && 'setCodecPreferences' in RTCRtpTransceiver.prototype
    && typeof RTCRtpReceiver.getCapabilities === 'function', 'RTCRtpTransceiver.setCodecPreferences');
  const caps = (RTCRtpReceiver.getCapabilities('video') || { codecs: [] }).codecs;
  const want = caps.filter(c => c.mimeType.toUpperCase() === `VIDEO/${name}` && (name !== 'H264'
    || (/packetization-mode=1/.test(c.sdpFmtpLine || '') && /profile-level-id=42e01f/i.test(c.sdpFmtpLine || ''))));
  if (!want.length) throw new WavegateError(`videoCodec: this browser cannot receive ${name}`);
  for (const t of pc.getTransceivers()) {
    if ((t.receiver.track && t.receiver.track.kind) === 'video') t.setCodecPreferences(want);
  }
}

export function createSession(options) { return new Session(options); }

/**
 * Lists media devices as {id, label, type: 'mic'|'speaker'|'camera'}.
 * @param {any} _unused @param {boolean} labels ask for permission first so labels are filled
 * @param {string} kind MEDIA_DEVICE_KIND
 */
export async function getMediaDevices(_unused, labels, kind = MEDIA_DEVICE_KIND.ALL) {
  requireApi(typeof navigator !== 'undefined' && navigator.mediaDevices && navigator.mediaDevices.enumerateDevices, 'navigator.mediaDevices.enumerateDevices');
  if (labels) {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true });
    s.getTracks().forEach(t => t.stop());
  }
  const types = { audioinput: 'mic', audiooutput: 'speaker', videoinput: 'camera' };
  return (await navigator.mediaDevices.enumerateDevices())
    .filter(d => types[d.kind])
    .filter(d => kind === MEDIA_DEVICE_KIND.ALL || (kind === MEDIA_DEVICE_KIND.INPUT) === (d.kind !== 'audiooutput'))
    .map(d => ({ id: d.deviceId, label: d.label, type: types[d.kind] }));
}

/** Seed compatibility: `Flashphoner.createSession(...)`, `Flashphoner.constants.SESSION_STATUS`. */
export const Flashphoner = Object.freeze({
  createSession, getMediaDevices,
  constants: Object.freeze({ SESSION_STATUS, CALL_STATUS, MEDIA_DEVICE_KIND, DTMF_TYPE }),
  SESSION_STATUS, CALL_STATUS, MEDIA_DEVICE_KIND, DTMF_TYPE,
  init() { /* nothing to initialise; kept for seed pages */ },
});

if (typeof globalThis !== 'undefined' && !globalThis.Flashphoner) globalThis.Flashphoner = Flashphoner;
