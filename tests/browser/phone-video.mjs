// The Phone Video page test (phone-video.sh runs it inside a loopback-only network namespace):
// starts the real `wavegate` binary (it spawns the media plane) on free loopback ports, drives
// Debian's /usr/bin/chromium (fake camera and microphone) with playwright-core to
// /phone-video.html and checks, through the page's controls and the JS SDK:
//   - the fake camera is listed and chosen (constraints {video: {width: 320, height: 240,
//     deviceId: {exact}}}): the local track has that device and size;
//   - a call to `echo` reaches ESTABLISHED; the SDK's getStats shows video encoded and the echo
//     decoded (framesDecoded > 20, VP8 or H.264 through the media plane and the echo
//     extension's video socket); the remote <video> in the page's display shows 320x240;
//   - the server's /health shows the call, hangup gives FINISH and frees it.
// Every wait is bounded; a watchdog ends the run; the browser and the server are closed or killed
// on every path. RTP ports 28000-28099.
//
// usage: node phone-video.mjs --wavegate BIN
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHROMIUM = process.env.WAVEGATE_CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 60000;
const label = 'chromium-phone-video';
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let server = null, context = null, profile = null;
const serverLog = [];
async function stopServer() {
  if (!server || server.exitCode !== null) return;
  server.kill('SIGTERM');
  const exited = await Promise.race([new Promise(res => server.once('exit', () => res(true))), new Promise(res => setTimeout(() => res(false), 5000))]);
  if (!exited) server.kill('SIGKILL');
}
let failing = false;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  console.error(`${label}: last server log lines:\n${serverLog.slice(-20).join('\n')}`);
  if (context) await Promise.race([context.close().catch(() => {}), new Promise(res => setTimeout(res, 5000))]);
  await stopServer();
  if (profile) rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
function bounded(promise, ms, what) {
  let t;
  return Promise.race([promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms); })]);
}
const sleep = ms => new Promise(res => setTimeout(res, ms));
function check(ok, what) { if (!ok) throw new Error(what); }
function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}
async function until(fn, ms, what, every = 100) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Error(`${what}: not within ${ms} ms (last ${JSON.stringify(last)})`);
}

async function startServer(bin) {
  const webrtc = await freeUdpPort(), sip = await freeUdpPort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WAVEGATE_')));
  Object.assign(env, {
    WAVEGATE_HTTP__LISTEN: '127.0.0.1:0', WAVEGATE_MEDIA__SHARDS: '1', WAVEGATE_MEDIA__PIN: 'false',
    WAVEGATE_MEDIA__RTP_PORTS: '28000-28099', WAVEGATE_MEDIA__WEBRTC_PORT_BASE: String(webrtc),
    WAVEGATE_LOG__FORMAT: 'json', WAVEGATE_LOG__LEVEL: 'info', WAVEGATE_SIP__LISTEN: `127.0.0.1:${sip}` });
  delete env.RUST_LOG;
  server = spawn(bin, [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: server.stderr });
  return bounded(new Promise((res, rej) => {
    lines.on('line', l => {
      serverLog.push(l);
      try {
        const j = JSON.parse(l);
        if (j.fields && j.fields.message === 'wavegate listening') res(j.fields.url);
      } catch { /* not JSON */ }
    });
    server.on('exit', code => rej(new Error(`wavegate exited (${code}) before listening`)));
    server.on('error', rej);
  }), 10000, 'wavegate start');
}
async function health(url) {
  const r = await bounded(fetch(`${url}health`), 3000, 'GET /health');
  return r.json();
}

async function main() {
  for (const [what, path] of [['chromium', CHROMIUM], ['wavegate binary', flags.wavegate]]) {
    if (!path || !existsSync(path)) return fail(`${what} not found: ${path}`);
  }
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  const { chromium } = await import('playwright-core');
  const url = await startServer(flags.wavegate);
  await until(async () => (await health(url)).status === 'ok', 10000, 'media plane running (/health ok)', 200);
  profile = mkdtempSync(join(tmpdir(), 'wavegate-chromium-'));
  context = await bounded(chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 15000,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--no-default-browser-check', '--disable-default-apps', '--disable-extensions',
      '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  }), 20000, 'chromium launch');
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  const figures = { browser: context.browser() ? context.browser().version() : '' };
  await page.goto(`${url}phone-video.html`, { timeout: 10000 });
  await page.waitForFunction(() => window.phoneVideo !== undefined, null, { timeout: 5000 });

  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'ESTABLISHED', null, { timeout: 5000 });
  await page.click('#listDevices');
  await page.waitForFunction(() => document.getElementById('camList').options.length > 1, null, { timeout: 5000 });
  const cam = await page.evaluate(() => document.getElementById('camList').options[1].value);
  await page.selectOption('#camList', cam);
  await page.fill('#width', '320');
  await page.fill('#height', '240');
  const t0 = Date.now();
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 10000 });
  figures.establishedMs = Date.now() - t0;

  const local = await page.evaluate(() => {
    const v = document.querySelector('#local video');
    const t = v && v.srcObject && v.srcObject.getVideoTracks()[0];
    return t ? t.getSettings() : null;
  });
  check(local && local.deviceId === cam, `local camera ${JSON.stringify(local)} is the chosen ${cam}`);
  check(local.width === 320 && local.height === 240, `local camera size ${local.width}x${local.height}, asked 320x240`);
  const stats = () => page.evaluate(() => new Promise(res => window.phoneVideo.call.getStats(s => {
    const o = s.outboundStream.videoStats || {}, i = s.inboundStream.videoStats || {}, a = s.inboundStream.audioStats || {};
    const v = document.querySelector('#remote video');
    res({ framesEncoded: o.framesEncoded || 0, packetsSent: o.packetsSent || 0, framesDecoded: i.framesDecoded || 0,
      packetsReceived: i.packetsReceived || 0, audioReceived: a.packetsReceived || 0,
      shown: v ? `${v.videoWidth}x${v.videoHeight}` : 'no <video>' });
  })));
  figures.video = await until(async () => { const s = await stats(); return s.framesDecoded > 20 && s.shown === '320x240' && s; },
    15000, 'echoed video decoded (20 frames) and shown at 320x240', 250);
  figures.videoMs = Date.now() - t0;
  check(figures.video.framesEncoded > 20 && figures.video.audioReceived > 50, `video encoded and audio back: ${JSON.stringify(figures.video)}`);
  figures.codec = await page.evaluate(async () => {
    const r = await window.phoneVideo.call.peerConnection().getStats();
    let c = null;
    r.forEach(v => { if (v.type === 'inbound-rtp' && v.kind === 'video') c = r.get(v.codecId); });
    return c && c.mimeType;
  });
  check(/^video\/(VP8|H264)$/.test(figures.codec || ''), `echoed video codec ${figures.codec}`);
  check((await health(url)).calls === 1, '/health shows the call');
  console.log(`${label}: ESTABLISHED in ${figures.establishedMs} ms; echoed video ${figures.codec} decoded after ${figures.videoMs} ms: ${JSON.stringify(figures.video)}`);

  await page.click('#hangup');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 5000 });
  await until(async () => (await health(url)).calls === 0, 3000, 'hangup frees the media session');
  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  await stopServer();
  rmSync(profile, { recursive: true, force: true });
  console.log(`${label}: PASS ${JSON.stringify(figures)}`);
}

main().catch(e => fail(e.stack || String(e)));
