// Shared helpers of the browser tests that run the real `wavegate` binary against real SIP peers
// (sip.mjs, firefox.mjs): free loopback ports, bounded waits, the server started on port 0 with
// its URL read from its JSON log, Kamailio (tests/peers/kamailio), baresip driven over ctrl_tcp
// (tests/peers/baresip) and SIPp scenarios. Every child is registered for cleanup so a failing
// test kills what it started; every wait is bounded.
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, connect as tcpConnect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const SIPP = '/usr/bin/sipp';
export const KAMAILIO = '/usr/sbin/kamailio';
export const KAMCMD = '/usr/sbin/kamcmd';
export const BARESIP = '/usr/bin/baresip';

export const sleep = ms => new Promise(res => setTimeout(res, ms));
// Installed in a page before any script (`context.addInitScript`): `window.__ws` collects the
// `type` of every WebSocket message the page receives. Self-contained: it runs in the page.
export function recordWsMessageTypes() {
  window.__ws = [];
  const OrigWs = window.WebSocket;
  window.WebSocket = function (url, p) {
    const ws = new OrigWs(url, p);
    ws.addEventListener('message', e => { try { window.__ws.push(JSON.parse(e.data).type); } catch { /* not JSON */ } });
    return ws;
  };
  window.WebSocket.prototype = OrigWs.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
}
export function check(ok, what) { if (!ok) throw new Error(what); }
export function bounded(promise, ms, what) {
  let t;
  return Promise.race([Promise.resolve(promise).finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms); })]);
}
export async function until(fn, ms, what, every = 100) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(every);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

export function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}
function tcpFree(port) {
  return new Promise(res => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}
/** A port free for both UDP and TCP on 127.0.0.1 (Kamailio and baresip listen on both). */
export async function freeUdpTcpPort() {
  for (let i = 0; i < 50; i++) {
    const p = await freeUdpPort();
    if (await tcpFree(p)) return p;
  }
  throw new Error('no port free for both UDP and TCP in 50 tries');
}

/** Children and temp dirs to clean up on every path. */
const children = new Set();
const dirs = new Set();
export function tempDir(prefix) { const d = mkdtempSync(join(tmpdir(), prefix)); dirs.add(d); return d; }
export function track(child) { children.add(child); child.once('exit', () => children.delete(child)); return child; }
export async function stop(child, ms = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const gone = await Promise.race([new Promise(res => child.once('exit', () => res(true))), sleep(ms).then(() => false)]);
  if (!gone) child.kill('SIGKILL');
}
export async function cleanup() {
  await Promise.all([...children].map(c => stop(c)));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * Starts the real wavegate binary (it spawns the media plane) on 127.0.0.1 with HTTP on port 0;
 * resolves {url, sipPort, log} once it logs its URL. `env` adds WAVEGATE_* settings.
 */
export async function startServer(bin, rtpPorts, env = {}) {
  const webrtc = await freeUdpPort();
  const sipPort = await freeUdpPort();
  const e = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WAVEGATE_')));
  Object.assign(e, {
    WAVEGATE_HTTP__LISTEN: '127.0.0.1:0', WAVEGATE_MEDIA__SHARDS: '1', WAVEGATE_MEDIA__PIN: 'false',
    WAVEGATE_MEDIA__RTP_PORTS: rtpPorts, WAVEGATE_MEDIA__WEBRTC_PORT_BASE: String(webrtc),
    WAVEGATE_LOG__FORMAT: 'json', WAVEGATE_LOG__LEVEL: 'info', WAVEGATE_SIP__LISTEN: `127.0.0.1:${sipPort}`,
  }, env);
  delete e.RUST_LOG;
  const server = track(spawn(bin, [], { env: e, stdio: ['ignore', 'ignore', 'pipe'] }));
  const log = [];
  const lines = createInterface({ input: server.stderr });
  const url = await bounded(new Promise((res, rej) => {
    lines.on('line', l => {
      log.push(l);
      if (log.length > 500) log.shift();
      try {
        const j = JSON.parse(l);
        if (j.fields && j.fields.message === 'wavegate listening') res(j.fields.url);
      } catch { /* not JSON */ }
    });
    server.on('exit', code => rej(new Error(`wavegate exited (${code}) before listening`)));
    server.on('error', rej);
  }), 10000, 'wavegate start');
  const health = async () => (await bounded(fetch(`${url}health`), 3000, 'GET /health')).json();
  await until(async () => (await health()).status === 'ok', 10000, 'media plane running (/health ok)', 200);
  return { url, sipPort, log, server, health };
}

/** Kamailio with tests/peers/kamailio/<cfg> in the foreground on a free port. */
export async function startKamailio(cfg) {
  check(existsSync(KAMAILIO), `${KAMAILIO} not found (scripts/deps.sh test installs kamailio)`);
  const port = await freeUdpTcpPort();
  const dir = tempDir('wavegate-kamailio-');
  const text = readFileSync(join(root, 'tests', 'peers', 'kamailio', cfg), 'utf8')
    .replaceAll('@PORT@', String(port)).replaceAll('@WORKDIR@', dir);
  writeFileSync(join(dir, 'kamailio.cfg'), text);
  const out = [];
  const k = track(spawn(KAMAILIO, ['-f', join(dir, 'kamailio.cfg'), '-DD', '-E', '-w', dir, '-P', join(dir, 'kamailio.pid')],
    { stdio: ['ignore', 'ignore', 'pipe'] }));
  k.stderr.on('data', d => { out.push(d.toString()); if (out.length > 200) out.shift(); });
  await until(() => new Promise(res => {
    const s = tcpConnect(port, '127.0.0.1', () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  }), 8000, `kamailio listening on ${port}`, 100);
  const locations = () => {
    try { return execFileSync(KAMCMD, ['-s', `unix:${dir}/kamailio_ctl`, 'ul.dump'], { timeout: 3000 }).toString(); } catch { return ''; }
  };
  return { port, dir, child: k, log: () => out.join(''), locations };
}

/** A 16-bit PCM WAV of a sine (`ch` channels, the same samples in each). */
function sineWav(freq, rate, secs, ch = 1) {
  const n = rate * secs, len = n * 2 * ch, b = Buffer.alloc(44 + len);
  b.write('RIFF', 0); b.writeUInt32LE(36 + len, 4); b.write('WAVEfmt ', 8); b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); b.writeUInt16LE(ch, 22); b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2 * ch, 28);
  b.writeUInt16LE(2 * ch, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(len, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.round(Math.sin(i * freq * 2 * Math.PI / rate) * 8000);
    for (let c = 0; c < ch; c++) b.writeInt16LE(v, 44 + (i * ch + c) * 2);
  }
  return b;
}

/**
 * baresip as `carol` registering at Kamailio `kport` (tests/peers/baresip), RTP on
 * `rtpFirst..+99`; events and command responses over one ctrl_tcp connection (netstrings).
 */
export async function startBaresip(kport, rtpFirst, { opus = false } = {}) {
  check(existsSync(BARESIP), `${BARESIP} not found (scripts/deps.sh test installs baresip-core)`);
  const sipPort = await freeUdpTcpPort(), ctrlPort = await freeUdpTcpPort();
  const dir = tempDir('wavegate-baresip-');
  const fill = t => t.replaceAll('@SIPPORT@', String(sipPort)).replaceAll('@RTPFIRST@', String(rtpFirst))
    .replaceAll('@RTPLAST@', String(rtpFirst + 99)).replaceAll('@CTRLPORT@', String(ctrlPort))
    .replaceAll('@KPORT@', String(kport)).replaceAll('@DIR@', dir);
  writeFileSync(join(dir, 'sine440_8000.wav'), sineWav(440, 8000, 60));
  writeFileSync(join(dir, 'sine440_48000.wav'), sineWav(440, 48000, 60, 2));
  let config = fill(readFileSync(join(root, 'tests', 'peers', 'baresip', 'config'), 'utf8'));
  let accounts = fill(readFileSync(join(root, 'tests', 'peers', 'baresip', 'accounts'), 'utf8'));
  if (opus) {
    // Opus first: the browser's Opus is passthrough to baresip (a PCMU-only peer would make the
    // call transcoded and re-offered narrowband Opus, which opus-reoffer.sh covers with SIPp).
    // aufile feeds the encoder as is: Opus needs a 48 kHz stereo file.
    config = config.replace('module\t\t\tg711.so', 'module\t\t\topus.so\nmodule\t\t\tg711.so')
      .replace('sine440_8000.wav', 'sine440_48000.wav');
    accounts = accounts.replace('audio_codecs=pcmu', 'audio_codecs=opus/48000/2,pcmu');
    check(/opus\.so/.test(config) && /opus\/48000\/2,pcmu/.test(accounts), 'baresip opus config');
  }
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'accounts'), accounts);
  const out = [];
  const b = track(spawn(BARESIP, ['-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] }));
  for (const s of [b.stdout, b.stderr]) s.on('data', d => { out.push(d.toString()); if (out.length > 400) out.shift(); });
  const sock = await until(() => new Promise(res => {
    const s = tcpConnect(ctrlPort, '127.0.0.1', () => res(s));
    s.on('error', () => res(false));
  }), 8000, 'baresip ctrl_tcp', 100);
  const events = [];
  let buf = Buffer.alloc(0);
  sock.on('data', d => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const colon = buf.indexOf(':');
      if (colon < 0) break;
      const len = Number(buf.subarray(0, colon).toString());
      if (buf.length < colon + 1 + len + 1) break;
      try { events.push(JSON.parse(buf.subarray(colon + 1, colon + 1 + len).toString())); } catch { /* skip */ }
      buf = buf.subarray(colon + 1 + len + 1);
    }
  });
  let token = 1;
  const command = async (cmd, params = '') => {
    const t = `t${token++}`;
    const body = JSON.stringify({ command: cmd, params, token: t });
    sock.write(`${Buffer.byteLength(body)}:${body},`);
    return until(() => events.find(e => e.response && e.token === t), 5000, `baresip response to ${cmd}`, 20);
  };
  const count = type => events.filter(e => e.type === type).length;
  const waitEvent = (type, n = 1, ms = 8000) => until(() => count(type) >= n && events.filter(e => e.type === type)[n - 1], ms, `baresip event ${type} x${n} (seen: ${events.map(e => e.type).join(',')})`, 50);
  return { sipPort, dir, child: b, events, command, count, waitEvent, sock, log: () => out.join('') };
}

/** SIPp running one scenario (UAS, or UAC when `target` is given); resolves exit code via `.exit`. */
export async function startSipp(scenario, { target = null, rtpEcho = false, extra = [] } = {}) {
  check(existsSync(SIPP), `${SIPP} not found (scripts/deps.sh test installs sip-tester)`);
  const port = await freeUdpPort(), media = await freeUdpPort();
  const dir = tempDir('wavegate-sipp-');
  const args = [...(target ? [target] : []), '-sf', scenario, '-i', '127.0.0.1', '-p', String(port),
    '-mi', '127.0.0.1', '-mp', String(media), '-m', '1', '-nostdin', '-timeout', '60s', '-trace_err', '-trace_msg',
    ...(rtpEcho ? ['-rtp_echo'] : []), ...extra];
  const s = track(spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'] }));
  const exit = new Promise(res => s.once('exit', code => res(code)));
  await sleep(400); // SIPp binds
  const logs = () => {
    let t = '';
    for (const f of execFileSync('ls', [dir]).toString().split('\n').filter(f => /errors\.log|messages\.log/.test(f))) {
      t += `--- ${f}\n${readFileSync(join(dir, f), 'utf8').slice(-4000)}\n`;
    }
    return t;
  };
  return { port, media, dir, child: s, exit, logs };
}

export const CHROMIUM = process.env.WAVEGATE_CHROMIUM || '/usr/bin/chromium';
/** Debian's Chromium through playwright-core: headless, fake devices, the quiet flags. */
export async function launchChromium() {
  check(existsSync(CHROMIUM), `${CHROMIUM} not found (scripts/deps.sh test installs chromium)`);
  const { chromium } = await import('playwright-core');
  const profile = tempDir('wavegate-chromium-');
  const context = await bounded(chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 15000,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--use-fake-device-for-media-stream=device-count=3', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--no-default-browser-check', '--disable-default-apps', '--disable-extensions',
      '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  }), 20000, 'chromium launch');
  return context;
}

/** Page helpers over the Phone page's elements and window.phone. */
export function phonePage(page) {
  const text = sel => page.locator(sel).textContent({ timeout: 2000 });
  const status = (which, want, ms = 5000) => page.waitForFunction(([w, s]) => document.getElementById(`${w}Status`).textContent === s,
    [which, want], { timeout: ms });
  const stats = () => page.evaluate(() => new Promise(res => window.phone.call.getStats(s => {
    const o = s.outboundStream.audioStats || {}, i = s.inboundStream.audioStats || {};
    res({ sent: o.packetsSent || 0, bytesSent: o.bytesSent || 0, received: i.packetsReceived || 0,
      bytesReceived: i.bytesReceived || 0, level: i.audioLevel || 0, energy: i.totalAudioEnergy || 0 });
  })));
  const logFrom = n => page.evaluate(k => window.phone.log.slice(k).map(l => l.slice(13)), n);
  const logLen = () => page.evaluate(() => window.phone.log.length);
  return { text, status, stats, logFrom, logLen };
}
