// Does an OUTGOING call from the page end up with Chromium sending narrowband Opus when the SIP
// side answers PCMU? Our answer to the browser's offer goes out before the SIP side answers, so
// the browser starts with its default fullband Opus; once SIPp (PCMU only) answers, the media
// plane transcodes the browser's Opus and re-offers it to the browser with Opus capped at 8 kHz
// (`reoffer` over the WebSocket API), which the JS SDK answers by itself. This test runs the real
// `wavegate` (and its media plane), the real SDK in headless Chromium, and SIPp, and reads the
// TOC byte (RFC 6716 §3.1) of every Opus frame Chromium's encoder produces, through encoded
// insertable streams on the sender (the page's RTCPeerConnection is wrapped before the SDK
// makes it; the SDK is not changed). Two calls:
//   A. to SIPp answering PCMU: a `reoffer` reaches the page, the SDK answers it, and every
//      frame encoded after the answer is applied (after 10 frames of settling) is narrowband;
//   B. to SIPp answering Opus (passthrough, nothing to cap): no `reoffer`, and Chromium sends
//      wider than narrowband — so call A's result is the re-offer's doing, not the test signal's.
// Media ports 43000-43099.
//
// usage: opus-reoffer.sh runs it inside a loopback-only network namespace
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { here, sleep, check, bounded, until, cleanup, startServer, startSipp, launchChromium, recordWsMessageTypes } from './lib.mjs';

const label = 'opus-reoffer';
const WATCHDOG_MS = 100000;
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let context = null, server = null;
let failing = false;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  if (server) console.error(`${label}: last server log lines:\n${server.log.slice(-25).join('\n')}`);
  if (context) await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  await cleanup();
  process.exit(1);
}

const bandOf = config =>
  config <= 3 ? 'NB' : config <= 7 ? 'MB' : config <= 11 ? 'WB' : config <= 13 ? 'SWB' : config <= 15 ? 'FB'
    : config <= 19 ? 'NB' : config <= 23 ? 'WB' : config <= 27 ? 'SWB' : 'FB';

// Installed in the page before any script: wraps RTCPeerConnection so the audio sender's encoded
// frames pass through a transform that records their TOC configs, and records every remote
// offer applied (the server's re-offers); `recordWsMessageTypes` (lib.mjs) keeps the WebSocket
// message types the page receives.
function instrument() {
  const Orig = window.RTCPeerConnection;
  window.__tocs = [];
  window.__offers = [];
  window.RTCPeerConnection = function (cfg) {
    const pc = new Orig({ ...(cfg || {}), encodedInsertableStreams: true });
    const add = pc.addTransceiver.bind(pc);
    pc.addTransceiver = (t, init) => {
      const tr = add(t, init);
      const kind = typeof t === 'string' ? t : t.kind;
      const { readable, writable } = tr.sender.createEncodedStreams();
      readable.pipeThrough(new TransformStream({
        transform(frame, c) {
          const b = new Uint8Array(frame.data);
          if (kind === 'audio' && b.length > 2) window.__tocs.push([performance.now(), b[0] >> 3, b.length]); // DTX frames say nothing
          c.enqueue(frame);
        },
      })).pipeTo(writable);
      return tr;
    };
    // With encoded insertable streams every receiver must be piped too.
    pc.addEventListener('track', e => {
      const { readable, writable } = e.receiver.createEncodedStreams();
      readable.pipeTo(writable);
    });
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

// In the page: one call through the SDK to `callee`; resolves once it is ESTABLISHED.
async function placeCall({ url, callee }) {
  const { createSession, SESSION_STATUS, CALL_STATUS } = await import('/sdk/wavegate.js');
  window.__tocs.length = 0;
  window.__offers.length = 0;
  window.__ws.length = 0;
  window.__errors = [];
  const session = window.__session || (window.__session = createSession({ urlServer: url, sipOptions: { login: 'alice', domain: '127.0.0.1' } }));
  session.on('error', e => window.__errors.push(e.reason));
  if (session.status() !== SESSION_STATUS.ESTABLISHED) {
    await new Promise((res, rej) => {
      session.on(SESSION_STATUS.ESTABLISHED, res);
      session.on(SESSION_STATUS.FAILED, () => rej(new Error(`session FAILED: ${session.cause()}`)));
    });
  }
  const call = window.__call = session.createCall({ callee, constraints: { audio: true, video: false } });
  await new Promise((res, rej) => {
    call.on(CALL_STATUS.ESTABLISHED, res);
    for (const s of [CALL_STATUS.FAILED, CALL_STATUS.FINISH, CALL_STATUS.BUSY]) call.on(s, () => rej(new Error(`call ${s}: ${call.cause()}`)));
    call.call();
  });
  return true;
}

async function main() {
  check(flags.wavegate && existsSync(flags.wavegate), `wavegate binary not found: ${flags.wavegate}`);
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  server = await startServer(flags.wavegate, '43000-43099');
  context = await launchChromium();
  await context.addInitScript(recordWsMessageTypes);
  await context.addInitScript(instrument);
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  await page.goto(`${server.url}phone.html`, { timeout: 10000 });

  const results = {};
  for (const [name, scenario] of [['pcmu', join(here, '..', 'peers', 'sipp', 'uas_answer.xml')], ['opus', join(here, 'sipp', 'uas_opus_echo.xml')]]) {
    const sipp = await startSipp(scenario);
    await bounded(page.evaluate(placeCall, { url: server.url, callee: `bob@127.0.0.1:${sipp.port}` }), 15000, `${name} call established`);
    if (name === 'pcmu') {
      // The re-offer reaches the page and the SDK answers it (the page's description is stable again).
      await until(() => page.evaluate(() => window.__offers.length > 0 && window.__call.peerConnection().signalingState === 'stable'),
        10000, 're-offer applied and answered by the SDK', 100);
    }
    await sleep(3000);
    const r = await page.evaluate(() => ({
      tocs: window.__tocs.slice(), offers: window.__offers.map(o => [o[0], (o[1].match(/a=fmtp:111 [^\r\n]*/) || [''])[0]]),
      ws: window.__ws.slice(), errors: window.__errors.slice(),
    }));
    r.sent = await page.evaluate(() => window.__call.peerConnection().getStats().then(s => { let n = 0; s.forEach(v => { if (v.type === 'outbound-rtp') n = v.packetsSent; }); return n; }));
    await page.evaluate(() => window.__call.hangup());
    await page.waitForFunction(() => ['FINISH', 'FAILED'].includes(window.__call.status()), null, { timeout: 10000 });
    const code = await bounded(sipp.exit, 15000, `SIPp (${name}) exit`);
    check(code === 0, `SIPp (${name}) exit ${code}:\n${sipp.logs()}`);
    check(r.errors.length === 0, `${name}: session errors: ${r.errors.join('; ')}`);
    const from = r.offers.length ? r.offers[0][0] : 0;
    const afterFrames = r.tocs.filter(t => t[0] >= from).slice(10);
    const after = afterFrames.map(t => t[1]);
    const meanBytes = afterFrames.length ? afterFrames.reduce((s, t) => s + t[2], 0) / afterFrames.length : 0;
    const counts = {};
    for (const t of after) counts[bandOf(t)] = (counts[bandOf(t)] || 0) + 1;
    const before = r.tocs.filter(t => t[0] < from).length;
    console.log(`${label}: ${name}: server messages ${r.ws.join(',')}; re-offers applied ${r.offers.length}${r.offers.length ? ` (${r.offers[0][1]})` : ''}; ${r.sent} packets sent; ${r.tocs.length} Opus frames (${before} before the re-offer), TOC configs ${[...new Set(r.tocs.map(t => t[1]))].join(',')}; bandwidths after the re-offer + 10: ${JSON.stringify(counts)}, mean frame ${meanBytes.toFixed(1)} bytes`);
    check(after.length >= 50, `${name}: only ${after.length} Opus frames encoded after the first 10 in 3 s`);
    results[name] = { counts, meanBytes, reoffers: r.offers.length, reofferMessages: r.ws.filter(t => t === 'reoffer').length, fmtp: r.offers.length ? r.offers[0][1] : '' };
  }
  const a = results.pcmu, b = results.opus;
  check(a.reofferMessages === 1 && a.reoffers === 1, `PCMU call: one reoffer expected, got ${a.reofferMessages} messages, ${a.reoffers} applied`);
  check(/maxplaybackrate=8000/.test(a.fmtp), `PCMU call: the re-offer's Opus fmtp caps at 8 kHz: ${a.fmtp}`);
  const notNb = Object.entries(a.counts).filter(([k]) => k !== 'NB').reduce((s, [, n]) => s + n, 0);
  check(notNb === 0, `PCMU call: ${notNb} frames wider than narrowband after the re-offer: ${JSON.stringify(a.counts)}`);
  // maxaveragebitrate=16000 in the re-offer: at most ~40 bytes per 20 ms on average. Chromium's
  // VBR on the fake microphone's tone stays far under any cap, so this bounds the frames but does
  // not isolate the cap's effect from the narrowband switch (the criterion bench measures that).
  check(/maxaveragebitrate=16000/.test(a.fmtp) && a.meanBytes > 0 && a.meanBytes <= 50,
    `PCMU call: frames after the re-offer average ${a.meanBytes.toFixed(1)} bytes (16 kbit/s is ~40): ${a.fmtp}`);
  check(b.reofferMessages === 0 && b.reoffers === 0, `Opus call: no re-offer expected (passthrough), got ${b.reofferMessages}`);
  const wide = Object.entries(b.counts).filter(([k]) => k !== 'NB').reduce((s, [, n]) => s + n, 0);
  check(wide > 0, `Opus call: Chromium sent only narrowband without a re-offer, so the PCMU result proves nothing: ${JSON.stringify(b.counts)}`);
  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  await cleanup();
  console.log(`${label}: PASS (PCMU call re-offered ${a.fmtp}: all narrowband after it, ${a.meanBytes.toFixed(1)} bytes per frame; Opus call not re-offered: ${JSON.stringify(b.counts)}, ${b.meanBytes.toFixed(1)} bytes per frame)`);
}

main().catch(e => fail(e.stack || String(e)));
