// Does Chromium send narrowband Opus when the SDP it answers asks for it? The media plane puts
// `maxplaybackrate=8000;sprop-maxcapturerate=8000` (RFC 7587 §6.1) in the Opus fmtp of its offer
// to the browser when the SIP side is narrowband (transcoded calls), to cut Opus decode from
// ~38 to ~13 µs per frame. This test checks the browser half of that bargain with the real
// Chromium: in one page, a "media plane" peer connection offers recvonly Opus, its offer's Opus
// fmtp gets exactly the parameters the bridge writes (read from bridge_sdp.rs, so the two cannot
// drift apart), a "browser" peer connection answers and sends a 440 Hz oscillator, and the
// receiver reads the TOC byte of every Opus frame (RFC 6716 §3.1) through encoded insertable
// streams. Run twice: without the parameters Chromium must send wider than narrowband (else the
// check proves nothing), with them every frame after the first few must be narrowband (SILK NB
// configs 0-3 or CELT NB 16-19).
//
// usage: opus-nb.sh runs it inside an isolated network namespace
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.WAVEGATE_CHROMIUM || '/usr/bin/chromium';
const label = 'opus-nb';

function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  process.exit(1);
}

// The parameters exactly as the bridge writes them for an 8 kHz SIP side.
const src = readFileSync(join(here, '../../mediaplane/src/webrtc/bridge_sdp.rs'), 'utf8');
const m = src.match(/NARROWBAND_OPUS_8K: &str = "([^"]+)"/);
if (!m) fail('NARROWBAND_OPUS_8K not found in bridge_sdp.rs');
const params = m[1];

const bandOf = config =>
  config <= 3 ? 'NB' : config <= 7 ? 'MB' : config <= 11 ? 'WB' : config <= 13 ? 'SWB' : config <= 15 ? 'FB'
    : config <= 19 ? 'NB' : config <= 23 ? 'WB' : config <= 27 ? 'SWB' : 'FB';

// Runs in the page: returns the TOC configs of the Opus frames received over `ms`.
async function pageRun({ extra, ms }) {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  osc.frequency.value = 440;
  const dst = ctx.createMediaStreamDestination();
  osc.connect(dst);
  osc.start();
  const track = dst.stream.getAudioTracks()[0];
  const plane = new RTCPeerConnection({ encodedInsertableStreams: true });
  const browser = new RTCPeerConnection();
  // No trickle: each side's description is sent once its candidates are in (as the bridge does).
  const gathered = pc => pc.iceGatheringState === 'complete' ? Promise.resolve()
    : new Promise(r => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
  const tocs = [];
  plane.ontrack = e => {
    const { readable, writable } = e.receiver.createEncodedStreams();
    readable.pipeThrough(new TransformStream({
      transform(frame, c) {
        const b = new Uint8Array(frame.data);
        if (b.length > 2) tocs.push(b[0] >> 3); // DTX frames (1-2 bytes) say nothing
        c.enqueue(frame);
      },
    })).pipeTo(writable);
  };
  plane.addTransceiver('audio', { direction: 'recvonly' });
  const offer = await plane.createOffer();
  let sdp = offer.sdp;
  const pt = sdp.match(/a=rtpmap:(\d+) opus\/48000\/2/i)[1];
  if (extra) sdp = sdp.replace(new RegExp(`a=fmtp:${pt} ([^\\r\\n]*)`), (_, p) => `a=fmtp:${pt} ${p};${extra}`);
  await plane.setLocalDescription({ type: 'offer', sdp });
  await gathered(plane);
  sdp = plane.localDescription.sdp;
  await browser.setRemoteDescription({ type: 'offer', sdp });
  browser.addTrack(track, dst.stream); // takes the offered m-line's transceiver
  await ctx.resume();
  await browser.setLocalDescription(await browser.createAnswer());
  await gathered(browser);
  await plane.setRemoteDescription(browser.localDescription);
  await new Promise(r => setTimeout(r, ms));
  const fmtp = sdp.match(new RegExp(`a=fmtp:${pt} [^\\r\\n]*`))[0];
  let sent = 0;
  (await browser.getStats()).forEach(r => { if (r.type === 'outbound-rtp') sent = r.packetsSent; });
  const state = `${plane.connectionState}/${browser.connectionState}, ${sent} packets sent, audio ${ctx.state}`;
  plane.close();
  browser.close();
  await ctx.close();
  return { tocs, fmtp, state };
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fail(`playwright-core is not installed (run: npm ci in tests/browser): ${e.message}`);
}
const watchdog = setTimeout(() => fail('watchdog: not finished within 50 s'), 50000);
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: 15000,
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
    '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate',
  ],
});
try {
  const page = await browser.newPage();
  page.on('console', msg => { if (msg.type() === 'error') console.log(`[page] ${msg.text()}`); });
  console.log(`${label}: Chromium ${browser.version()}, parameters from bridge_sdp.rs: ${params}`);
  const results = {};
  for (const [name, extra] of [['default', ''], ['narrowband', params]]) {
    const { tocs, fmtp, state } = await page.evaluate(pageRun, { extra, ms: 3000 });
    const counts = {};
    for (const t of tocs.slice(10)) counts[bandOf(t)] = (counts[bandOf(t)] || 0) + 1;
    console.log(`${label}: ${name}: offer ${fmtp}; ${state}; ${tocs.length} frames, TOC configs ${[...new Set(tocs)].join(',')}; bandwidths after the first 10: ${JSON.stringify(counts)}`);
    if (tocs.length < 50) fail(`${name}: only ${tocs.length} Opus frames received in 3 s`);
    results[name] = counts;
  }
  const wide = Object.entries(results.default).filter(([b]) => b !== 'NB').reduce((a, [, n]) => a + n, 0);
  if (wide === 0) fail('Chromium sent narrowband even by default: the comparison proves nothing');
  const notNb = Object.entries(results.narrowband).filter(([b]) => b !== 'NB').reduce((a, [, n]) => a + n, 0);
  if (notNb > 0) fail(`with ${params} Chromium still sent ${notNb} frames wider than narrowband`);
  console.log(`${label}: ok (Chromium sends narrowband Opus when asked with ${params})`);
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
