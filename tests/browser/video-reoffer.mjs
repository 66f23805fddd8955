// Does an OUTGOING page video call end up with Chromium's video reaching a SIP side that takes
// H.264 only? Our answer to the browser's offer goes out before the SIP side answers, listing the
// bridged video formats in Chromium's order, so Chromium starts with VP8; once SIPp answers
// (PCMU audio, H.264 42e01f video as 99 on a UDP socket of this test), the media plane re-offers
// to the browser ONCE (`reoffer` over the WebSocket API): the video m-line lists one H.264 format,
// and the Opus fmtp is capped at 8 kHz (the browser's Opus is transcoded to PCMU). The JS SDK
// answers it by itself. Checked: one `reoffer` reaches the page, with exactly one video format
// (H264, and its RTX) and maxplaybackrate=8000; the SDK's answer leaves the page stable; Chromium's outbound
// video codec is then video/H264; the test's video socket receives RTP from the media plane with
// payload type 99 only (at least 60 packets in 4 s after the answer), none of it before the SIP
// answer could be narrowed (VP8 is never forwarded to an H.264-only phone). Media ports
// 43400-43479; the SIP side's video socket on 43490 (RTCP 43491).
//
// usage: video-reoffer.sh runs it inside a loopback-only network namespace
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { here, sleep, check, bounded, until, cleanup, startServer, startSipp, launchChromium, tempDir, recordWsMessageTypes } from './lib.mjs';

const label = 'video-reoffer';
const WATCHDOG_MS = 80000;
const VIDEO_PORT = 43490;
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let context = null, server = null;
const sockets = [];
let failing = false;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  if (server) console.error(`${label}: last server log lines:\n${server.log.slice(-25).join('\n')}`);
  if (context) await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  for (const s of sockets) s.close();
  await cleanup();
  process.exit(1);
}

// Installed in the page before any script: records every remote offer applied (the server's
// re-offers); `recordWsMessageTypes` (lib.mjs) keeps the WebSocket message types the page receives.
function instrument() {
  const Orig = window.RTCPeerConnection;
  window.__offers = [];
  window.RTCPeerConnection = function (cfg) {
    const pc = new Orig(cfg);
    const srd = pc.setRemoteDescription.bind(pc);
    pc.setRemoteDescription = async d => {
      const r = await srd(d);
      if (d.type === 'offer') window.__offers.push([performance.now(), d.sdp]);
      return r;
    };
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
}

// In the page: one audio + video call through the SDK to `callee` (no videoCodec: Chromium's
// own list); resolves once it is ESTABLISHED.
async function placeCall({ url, callee }) {
  const { createSession, SESSION_STATUS, CALL_STATUS } = await import('/sdk/wavegate.js');
  window.__errors = [];
  const session = window.__session = createSession({ urlServer: url, sipOptions: { login: 'alice', domain: '127.0.0.1' } });
  session.on('error', e => window.__errors.push(e.reason));
  await new Promise((res, rej) => {
    session.on(SESSION_STATUS.ESTABLISHED, res);
    session.on(SESSION_STATUS.FAILED, () => rej(new Error(`session FAILED: ${session.cause()}`)));
  });
  const call = window.__call = session.createCall({ callee, constraints: { audio: true, video: { width: 320, height: 240 } } });
  await new Promise((res, rej) => {
    call.on(CALL_STATUS.ESTABLISHED, res);
    for (const s of [CALL_STATUS.FAILED, CALL_STATUS.FINISH, CALL_STATUS.BUSY]) call.on(s, () => rej(new Error(`call ${s}: ${call.cause()}`)));
    call.call();
  });
  return window.__call.peerConnection().localDescription.sdp;
}

// The video m-line's payload types and their rtpmap names, in order.
function videoFormats(sdp) {
  const sec = sdp.split(/\r?\nm=/).find(s => s.startsWith('video'));
  if (!sec) return [];
  const pts = sec.split(/\r?\n/)[0].split(' ').slice(3);
  return pts.map(pt => { const m = sec.match(new RegExp(`a=rtpmap:${pt} ([^/\\r\\n]+)`)); return `${pt} ${m ? m[1] : '?'}`; });
}

async function main() {
  check(flags.wavegate && existsSync(flags.wavegate), `wavegate binary not found: ${flags.wavegate}`);
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();

  // The SIP side's video: count RTP by payload type, with arrival times.
  const got = [];
  const video = createSocket('udp4');
  const rtcp = createSocket('udp4');
  sockets.push(video, rtcp);
  video.on('message', b => { if (b.length >= 12 && (b[0] >> 6) === 2) got.push([performance.now(), b[1] & 0x7f]); });
  rtcp.on('message', () => {});
  await new Promise((res, rej) => { video.once('error', rej); video.bind(VIDEO_PORT, '127.0.0.1', res); });
  await new Promise((res, rej) => { rtcp.once('error', rej); rtcp.bind(VIDEO_PORT + 1, '127.0.0.1', res); });
  const scenario = join(tempDir('wavegate-vreoffer-'), 'uas_h264_only.xml');
  writeFileSync(scenario, readFileSync(join(here, 'sipp', 'uas_h264_only.xml'), 'utf8').replace('m=video VIDEO_PORT', `m=video ${VIDEO_PORT}`));

  server = await startServer(flags.wavegate, '43400-43479');
  context = await launchChromium();
  await context.addInitScript(recordWsMessageTypes);
  await context.addInitScript(instrument);
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  await page.goto(`${server.url}phone.html`, { timeout: 10000 });

  const sipp = await startSipp(scenario);
  const offer = await bounded(page.evaluate(placeCall, { url: server.url, callee: `bob@127.0.0.1:${sipp.port}` }), 15000, 'call established');
  const offered = videoFormats(offer);
  check(offered.length > 1 && /VP8/.test(offered[0]) && offered.some(f => / H264$/.test(f)), `Chromium offers VP8 first and H.264: ${offered.join(', ')}`);
  await until(() => page.evaluate(() => window.__offers.length > 0 && window.__call.peerConnection().signalingState === 'stable'),
    10000, 're-offer applied and answered by the SDK', 100);
  const answeredAt = await page.evaluate(() => performance.now());
  // Page time and node time differ: take the split on node's clock.
  const split = performance.now();
  const before = got.length;
  await sleep(4000);
  const r = await page.evaluate(() => ({ offers: window.__offers.map(o => o[1]), ws: window.__ws.slice(), errors: window.__errors.slice() }));
  const stats = await page.evaluate(async () => {
    const s = await window.__call.peerConnection().getStats();
    let codec = null, sent = 0;
    s.forEach(v => { if (v.type === 'outbound-rtp' && v.kind === 'video') { codec = s.get(v.codecId); sent = v.packetsSent; } });
    return { codec: codec && codec.mimeType, fmtp: codec && codec.sdpFmtpLine, sent };
  });
  await page.evaluate(() => window.__call.hangup());
  await page.waitForFunction(() => ['FINISH', 'FAILED'].includes(window.__call.status()), null, { timeout: 10000 });
  const code = await bounded(sipp.exit, 15000, 'SIPp exit');
  check(code === 0, `SIPp exit ${code}:\n${sipp.logs()}`);

  const after = got.filter(g => g[0] >= split);
  const pts = [...new Set(got.map(g => g[1]))];
  const reoffers = r.ws.filter(t => t === 'reoffer').length;
  const narrowed = r.offers.length ? videoFormats(r.offers[0]) : [];
  const opusFmtp = r.offers.length ? (r.offers[0].match(/a=fmtp:111 [^\r\n]*/) || [''])[0] : '';
  console.log(`${label}: Chromium offered ${offered.join(', ')}; server messages ${r.ws.join(',')}; re-offer video ${narrowed.join(', ')}, ${opusFmtp}; `
    + `Chromium sends ${stats.codec} (${stats.fmtp}), ${stats.sent} video packets; the SIP side got ${got.length} video RTP packets `
    + `(${before} before the answer was applied at page time ${answeredAt.toFixed(0)} ms, ${after.length} in the 4 s after), payload types ${pts.join(',')}`);
  check(r.errors.length === 0, `session errors: ${r.errors.join('; ')}`);
  check(reoffers === 1 && r.offers.length === 1, `one reoffer expected, got ${reoffers} messages, ${r.offers.length} applied`);
  const media = narrowed.filter(f => !/ rtx$/.test(f));
  check(media.length === 1 && / H264$/.test(media[0]), `the re-offer's video is one H.264 format (and its RTX): ${narrowed.join(', ')}`);
  check(/maxplaybackrate=8000/.test(opusFmtp), `the same re-offer caps Opus at 8 kHz: ${opusFmtp}`);
  check(stats.codec === 'video/H264', `Chromium sends ${stats.codec} after the re-offer`);
  check(after.length >= 60, `only ${after.length} video RTP packets reached the SIP side in 4 s after the re-offer`);
  check(pts.length === 1 && pts[0] === 99, `the SIP side gets its own payload type 99 only: ${pts.join(',')}`);
  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  for (const s of sockets) s.close();
  await cleanup();
  console.log(`${label}: PASS (one re-offer: video ${narrowed.join(', ')} + ${opusFmtp}; ${after.length} H.264 packets as 99 to the SIP side in 4 s)`);
}

main().catch(e => fail(e.stack || String(e)));
