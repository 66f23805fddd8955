// The headless-Chromium echo test's variants (run.sh calls this inside a loopback-only network
// namespace). Per variant: starts the Rust harness (media plane + HTTP page server + RTP echo
// peer), drives Debian's /usr/bin/chromium with playwright-core (never a downloaded browser) to
// the raw page, reads the page's getStats() figures and the harness's counters, asserts them and
// prints them. Variants run one after the other in this one process (loading playwright-core
// costs ~2.5 s here) and the run stops at the first failure. Every wait is bounded; a watchdog per
// variant ends the run with a non-zero exit; the browser and harness are closed or killed.
//
// usage: node run.mjs --harness BIN --mediaplane BIN [--dtmf DIGITS|''] [--min-packets N]
//                     [--media-ms MS] VARIANT...      (VARIANT: a key of VARIANTS below)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.WAVEGATE_CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 30000;

const VARIANTS = {
  // The echo peer answers Opus: passthrough Opus both ways; also holds (sendonly re-offer) and
  // resumes the call, 1.5 s each.
  opus: { sipCodec: 'opus', holdMs: 1500 },
  // The browser offers only PCMU (and telephone-event), the echo peer answers PCMU.
  pcmu: { sipCodec: 'pcmu', only: 'PCMU' },
  // The SIP side calls the browser (OfferToBrowser/BrowserAnswer), offering Opus as pt 96 (or
  // PCMU) and telephone-event/8000.
  'opus-in': { sipCodec: 'opus', incoming: true },
  'pcmu-in': { sipCodec: 'pcmu', incoming: true },
  // The browser offers everything with PCMU first, the echo peer answers PCMU only: the media
  // plane must answer the browser in its codec order (before it knows the SIP answer), or
  // Chromium sends Opus, which the bridge cannot map to the PCMU-only SIP side.
  'pcmu-prefer': { sipCodec: 'pcmu', prefer: 'PCMU' },
  // Audio (Opus) and the fake camera: the browser offers only VP8 (or only H.264 with
  // packetization-mode=1) for video, the echo peer answers it and echoes video and its RTCP;
  // the echoed video must decode (framesDecoded). No DTMF.
  vp8: { sipCodec: 'opus', video: 'vp8', dtmf: '' },
  h264: { sipCodec: 'opus', video: 'h264', dtmf: '' },
};

const flags = {}, names = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--')) flags[a.slice(2)] = process.argv[++i];
  else names.push(a);
}
const common = {
  harness: flags.harness,
  mediaplane: flags.mediaplane,
  dtmf: flags.dtmf ?? '0123456789*#',
  minPackets: Number(flags['min-packets'] ?? 100),
  mediaMs: Number(flags['media-ms'] ?? 4000),
};
let label = 'chromium-echo';

let harness = null, context = null, profile = null;
function cleanup() {
  if (harness && harness.exitCode === null) harness.kill('SIGKILL');
  if (profile) rmSync(profile, { recursive: true, force: true });
}
let failing = false, watchdog = null;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  // Close the browser properly (bounded); playwright kills it on exit if this hangs.
  if (context) await Promise.race([context.close().catch(() => {}), new Promise(res => setTimeout(res, 5000))]);
  cleanup();
  process.exit(1);
}

function bounded(promise, ms, what) {
  let t;
  return Promise.race([promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms); })]);
}

async function main() {
  for (const [what, path] of [['chromium', CHROMIUM], ['harness binary', common.harness], ['media plane binary', common.mediaplane]]) {
    if (!path || !existsSync(path)) return fail(`${what} not found: ${path}`);
  }
  if (!names.length) return fail(`no variant given (${Object.keys(VARIANTS).join(', ')})`);
  for (const n of names) if (!VARIANTS[n]) return fail(`unknown variant ${n} (${Object.keys(VARIANTS).join(', ')})`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    return fail(`playwright-core is not installed (run: npm ci in tests/browser): ${e.message}`);
  }
  for (const n of names) {
    const opts = { ...common, prefer: '', only: '', incoming: false, holdMs: 0, video: '', ...VARIANTS[n] };
    label = `chromium-echo[${n}]`;
    watchdog = setTimeout(() => fail(`watchdog: not finished within ${WATCHDOG_MS} ms`), WATCHDOG_MS);
    await runVariant(chromium, opts);
    clearTimeout(watchdog);
    cleanup();
    harness = null; profile = null;
  }
}

async function runVariant(chromium, opts) {
  const t0 = Date.now();
  harness = spawn(opts.harness, ['--mediaplane', opts.mediaplane, '--www', join(here, 'www'), '--sip-codec', opts.sipCodec, '--max-secs', '35', ...(opts.incoming ? ['--incoming'] : []), ...(opts.video ? ['--video', opts.video] : [])],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  harness.on('exit', (code, sig) => { if (code !== 0 && code !== null) console.error(`${label}: harness exited with ${code}`); });
  const url = await bounded(new Promise((res, rej) => {
    const lines = createInterface({ input: harness.stdout });
    lines.on('line', l => { if (l.startsWith('LISTEN ')) res(l.slice(7).trim()); else console.log(`[harness] ${l}`); });
    harness.on('exit', code => rej(new Error(`harness exited (${code}) before listening`)));
    harness.on('error', rej);
  }), 10000, 'harness start');

  profile = mkdtempSync(join(tmpdir(), 'wavegate-chromium-'));
  context = await bounded(chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 15000,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      // Quiet flags: nothing but 127.0.0.1, even inside the namespace.
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--no-default-browser-check', '--disable-default-apps', '--disable-extensions',
      '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  }), 20000, 'chromium launch');
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  const q = new URLSearchParams({ media_ms: String(opts.mediaMs) });
  if (opts.prefer) q.set('prefer', opts.prefer);
  if (opts.only) q.set('only', opts.only);
  if (opts.dtmf) q.set('dtmf', opts.dtmf);
  if (opts.incoming) q.set('incoming', '1');
  if (opts.holdMs) q.set('hold_ms', String(opts.holdMs));
  if (opts.video) q.set('video', opts.video);
  await page.goto(`${url}echo.html?${q}`, { timeout: 10000 });
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: opts.mediaMs + 20000 });
  const r = await page.evaluate(() => window.__result);
  const browserVersion = context.browser() ? context.browser().version() : (await page.evaluate(() => navigator.userAgent));
  await bounded(context.close(), 10000, 'chromium close');
  context = null;

  const res = await bounded(fetch(`${url}shutdown`, { method: 'POST' }), 10000, 'harness shutdown');
  const h = await res.json();
  const code = await bounded(new Promise(res => harness.exitCode !== null ? res(harness.exitCode) : harness.on('exit', c => res(c))), 10000, 'harness exit');

  const s = r.stats || {}, a = r.audioStats || s;
  // RTTs from the final stats: str0m's first RTCP report reaches Chromium only after ~5 s.
  const out = s.outbound || {}, inb = s.inbound || {}, pair = s.pair || {}, rin = s.remoteInbound || {}, rout = s.remoteOutbound || {};
  const ain = a.inbound || {};
  const mp = h.media_plane || {};
  const rtt = v => (typeof v === 'number' ? `${(v * 1000).toFixed(1)} ms` : 'n/a');
  console.log(`${label}: ${browserVersion}`);
  console.log(`  steps: ${(r.steps || []).join(' | ')}`);
  console.log(`  offer: ${(r.offer || []).filter(l => /^(m=|a=rtpmap)/.test(l)).join(' ')}`);
  console.log(`  answer: ${(r.answer || []).join(' ')}`);
  console.log(`  ICE connected -> DTLS connected: ${r.iceToDtlsMs} ms${r.iceToDtlsMs > 500 ? '  WARNING: slow DTLS setup (see docs/webrtc.md, Chromium test)' : ''}`);
  console.log(`  ICE ${r.iceConnectionState}, connection ${r.connectionState}, DTLS ${s.transport && s.transport.dtlsState} (${s.transport && s.transport.srtpCipher}), pair ${pair.local} -> ${pair.remote}`);
  console.log(`  browser sent ${out.packetsSent} packets (${out.codec}), received ${inb.packetsReceived} (${inb.codec}), lost ${inb.packetsLost}, jitter ${inb.jitter}`);
  console.log(`  RTT: ICE ${rtt(pair.currentRoundTripTime)} (${pair.responsesReceived} responses), RTCP from receiver reports ${rtt(rin.roundTripTime)} (${rin.roundTripTimeMeasurements || 0} measurements), sender reports received ${rout.reportsSent || 0}`);
  console.log(`  echo peer: ${h.echo.rtp_packets} RTP packets echoed (pt ${JSON.stringify(h.echo.payload_types)}, ssrcs ${h.echo.ssrcs.length}), answer pt ${h.sip_pt}`);
  console.log(`  media plane (Delete): browser leg in ${mp.offerer && mp.offerer.rtp_packets_in} out ${mp.offerer && mp.offerer.rtp_packets_out} dropped ${mp.offerer && mp.offerer.dropped}; SIP leg in ${mp.answerer && mp.answerer.rtp_packets_in} out ${mp.answerer && mp.answerer.rtp_packets_out} dropped ${mp.answerer && mp.answerer.dropped}`);
  const mq = h.quality || {}, lq = (x = {}) => `in ${x.packets_in} lost ${x.lost_in} jitter ${x.jitter_in_us} us, out ${x.packets_out} (peer reports lost ${x.remote_lost ?? '-'}, jitter ${x.remote_jitter_us ?? '-'} us), RTT ${x.rtt_us != null ? (x.rtt_us / 1000).toFixed(1) + ' ms' : 'n/a'}`;
  console.log(`  media plane Stats: browser leg ${lq(mq.browser)}; SIP leg ${lq(mq.sip)}${mq.error ? " ERROR " + mq.error : ""}`);
  const dtmfFrom = tag => (h.dtmf_events || []).filter(e => e.tag === tag);
  const digits = evs => evs.map(e => e.digit).join('');
  const durations = evs => evs.map(e => e.duration_ms).join(',');
  if (opts.dtmf) {
    console.log(`  DTMF: browser played '${r.dtmf && r.dtmf.played}'; media plane DtmfReceived from browser '${digits(dtmfFrom('browser'))}' (ms ${durations(dtmfFrom('browser'))}); echo peer got '${h.echo.dtmf_digits}' as pt ${h.te_pt} in ${h.echo.dtmf_packets} packets (ms ${h.echo.dtmf_durations_ms.join(',')}); echoed back, DtmfReceived from SIP side '${digits(dtmfFrom('echo'))}'`);
  }
  console.log(`  events: ${JSON.stringify(h.events)}; total ${Date.now() - t0} ms`);

  const problems = [];
  if (!r.ok) problems.push(`page: ${r.error}`);
  if (code !== 0) problems.push(`harness exit code ${code}`);
  if (!s.transport || s.transport.dtlsState !== 'connected') problems.push(`DTLS state ${s.transport && s.transport.dtlsState}`);
  if (!(out.packetsSent > opts.minPackets)) problems.push(`outbound-rtp packetsSent ${out.packetsSent} <= ${opts.minPackets}`);
  if (!(inb.packetsReceived > opts.minPackets)) problems.push(`inbound-rtp packetsReceived ${inb.packetsReceived} <= ${opts.minPackets} (the echo did not come back through the media plane)`);
  if (!(h.echo.rtp_packets > opts.minPackets)) problems.push(`echo peer saw ${h.echo.rtp_packets} RTP packets <= ${opts.minPackets}`);
  // The media plane's own quality view must agree that media came in from both sides.
  if (mq.error || !(mq.browser && mq.browser.packets_in > opts.minPackets && mq.sip && mq.sip.packets_in > opts.minPackets)) problems.push(`media plane Stats: ${mq.error || `browser in ${mq.browser && mq.browser.packets_in}, SIP in ${mq.sip && mq.sip.packets_in}`}`);
  if (h.echo.rtp_packets > 0 && !(h.echo.payload_types.length === 1 && h.echo.payload_types[0] === h.sip_pt)) problems.push(`echo peer saw payload types ${JSON.stringify(h.echo.payload_types)}, answered ${h.sip_pt}`);
  // The echoed audio must decode as audio: played out for most of the media time, little
  // concealment, and about the loudness of the fake microphone (energy per second, sent vs
  // received; silence or garbage payloads fall outside the band).
  // (Read before the DTMF, which replaces audio packets while it plays.)
  const secs = opts.mediaMs / 1000, src = a.source || {};
  const rate = (e, d) => (d > 0 ? e / d : 0);
  const energyRatio = rate(ain.totalAudioEnergy, ain.totalSamplesDuration) / (rate(src.totalAudioEnergy, src.totalSamplesDuration) || NaN);
  const concealed = ain.totalSamplesReceived > 0 ? ain.concealedSamples / ain.totalSamplesReceived : 1;
  console.log(`  audio back (first ${secs} s): ${(ain.totalSamplesDuration || 0).toFixed(2)} s played, ${(100 * concealed).toFixed(1)} % concealed, energy/s received/sent ${energyRatio.toFixed(2)}`);
  if (!(ain.totalSamplesDuration >= 0.5 * secs)) problems.push(`only ${ain.totalSamplesDuration} s of received audio played out (media ran ${secs} s)`);
  if (!(concealed < 0.2)) problems.push(`${(100 * concealed).toFixed(1)} % of received samples concealed`);
  if (!(energyRatio > 0.2 && energyRatio < 5)) problems.push(`received/sent audio energy per second ${energyRatio} outside 0.2..5 (silence or garbled payload)`);
  if (opts.dtmf) {
    // Chromium's tones last 100 ms; a wrong clock-rate mapping (8000 vs 48000) is 6x off.
    const okMs = ms => ms >= 50 && ms <= 300;
    if (!r.dtmf || r.dtmf.played !== opts.dtmf) problems.push(`browser played DTMF '${r.dtmf && r.dtmf.played}', asked '${opts.dtmf}'`);
    for (const [where, got, ms] of [
      ['media plane DtmfReceived from the browser', digits(dtmfFrom('browser')), dtmfFrom('browser').map(e => e.duration_ms)],
      ['echo peer (SIP side)', h.echo.dtmf_digits, h.echo.dtmf_durations_ms],
      ['media plane DtmfReceived from the SIP side (the echo)', digits(dtmfFrom('echo')), dtmfFrom('echo').map(e => e.duration_ms)],
    ]) {
      if (got !== opts.dtmf) problems.push(`${where}: DTMF '${got}', expected '${opts.dtmf}'`);
      if (!ms.every(okMs)) problems.push(`${where}: DTMF durations ${ms} ms, expected about 100`);
    }
  }
  if (opts.holdMs) {
    // While held (browser sendonly, echo peer recvonly) the browser still sends and the echo peer
    // still gets it, but nothing goes to the browser, though the echo peer keeps sending; after
    // the resume the echo reaches the browser again. The connection stays up throughout.
    const hd = r.hold || {}, d = (a, b, k) => (a && b ? b[k] - a[k] : NaN);
    const want = Math.floor(opts.holdMs / 20 / 2); // half of the 50 packets/s
    const held = k => d(hd.held, hd.heldEnd, k), resumed = k => d(hd.resumed, hd.resumedEnd, k);
    console.log(`  hold ${opts.holdMs} ms (answer ${hd.answeredHold}): browser sent +${held('sent')}, echo peer +${held('echoed')}, media plane to browser +${held('toBrowser')}, browser received +${held('received')}; resume (answer ${hd.answeredResume}): sent +${resumed('sent')}, echo +${resumed('echoed')}, to browser +${resumed('toBrowser')}, received +${resumed('received')}; connection ${hd.heldEnd && hd.heldEnd.connection}/${hd.resumedEnd && hd.resumedEnd.connection}; SIP re-offers ${JSON.stringify(h.reoffers)}`);
    if (hd.answeredHold !== 'recvonly') problems.push(`hold: the media plane answered ${hd.answeredHold}, expected recvonly`);
    if (hd.answeredResume !== 'sendrecv') problems.push(`resume: the media plane answered ${hd.answeredResume}, expected sendrecv`);
    if (JSON.stringify(h.reoffers) !== JSON.stringify([['sendonly', 'recvonly'], ['sendrecv', 'sendrecv']])) problems.push(`SIP re-offers/answers ${JSON.stringify(h.reoffers)}, expected sendonly/recvonly then sendrecv/sendrecv`);
    if (!(held('sent') > want && held('echoed') > want)) problems.push(`hold: browser -> SIP should go on (sent +${held('sent')}, echoed +${held('echoed')})`);
    if (!(held('toBrowser') <= 2)) problems.push(`hold: the media plane sent ${held('toBrowser')} packets to the held browser`);
    if (!(resumed('toBrowser') > want && resumed('received') > want)) problems.push(`resume: the echo did not reach the browser again (to browser +${resumed('toBrowser')}, received +${resumed('received')})`);
    for (const k of ['heldEnd', 'resumedEnd']) if (!hd[k] || hd[k].connection !== 'connected') problems.push(`connection ${hd[k] && hd[k].connection} at ${k}`);
  }
  if (opts.video) checkVideo(opts, r, h, problems);
  const wantCodec = opts.sipCodec === 'pcmu' ? 'audio/pcmu' : 'audio/opus';
  for (const [dir, c] of [['outbound', out.codec], ['inbound', inb.codec]]) {
    if (!c || !c.toLowerCase().startsWith(wantCodec)) problems.push(`${dir} codec ${c}, expected ${wantCodec}`);
  }
  if (problems.length) return fail(problems.join('; '));
  console.log(`${label}: PASS`);
}

// Video variants: the browser encodes the fake camera in the chosen codec, the echo peer gets it
// as the answered payload type (one SSRC) through the media plane, and what comes back decodes.
function checkVideo(opts, r, h, problems) {
  const s = r.stats || {}, vi = s.videoIn || {}, vo = s.videoOut || {}, ve = h.video_echo || {};
  const mv = (h.quality || {}).video || {};
  const want = `video/${opts.video}`;
  console.log(`  video: sent ${vo.packetsSent} packets, ${vo.framesEncoded} frames (${vo.keyFramesEncoded} key) as ${vo.codec} by ${vo.encoderImplementation}, PLI/FIR received ${vo.pliCount}/${vo.firCount}; received ${vi.packetsReceived} packets, decoded ${vi.framesDecoded} frames (${vi.keyFramesDecoded} key, ${vi.frameWidth}x${vi.frameHeight}) as ${vi.codec} by ${vi.decoderImplementation}, lost ${vi.packetsLost}, PLI/FIR sent ${vi.pliCount}/${vi.firCount}`);
  console.log(`  video echo peer: ${ve.rtp_packets} RTP (pt ${JSON.stringify(ve.payload_types)}, answered ${h.video_pt}, ssrcs ${(ve.ssrcs || []).length}), ${ve.rtcp_packets} RTCP; media plane video ${JSON.stringify(mv)}`);
  if (!(vo.framesEncoded > 0) || !vo.codec || !vo.codec.toLowerCase().startsWith(want)) problems.push(`browser encoded ${vo.framesEncoded} frames as ${vo.codec}, expected ${want}`);
  if (!(vi.framesDecoded > 10) || !vi.codec || !vi.codec.toLowerCase().startsWith(want)) problems.push(`browser decoded ${vi.framesDecoded} echoed frames as ${vi.codec}, expected > 10 as ${want}`);
  if (!(ve.rtp_packets > opts.minPackets / 2)) problems.push(`video echo peer saw ${ve.rtp_packets} RTP packets`);
  if (!(ve.payload_types && ve.payload_types.length === 1 && ve.payload_types[0] === h.video_pt && ve.ssrcs.length === 1)) problems.push(`video echo peer saw payload types ${JSON.stringify(ve.payload_types)} (answered ${h.video_pt}), ${(ve.ssrcs || []).length} SSRCs`);
  if (!(mv.packets_to_sip > opts.minPackets / 2 && mv.packets_to_browser > opts.minPackets / 2)) problems.push(`media plane video counters ${JSON.stringify(mv)}`);
}

main().catch(e => fail(e && e.stack || String(e)));
