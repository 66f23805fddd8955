// The Phone page in Firefox ESR (firefox.sh runs it inside a loopback-only network namespace):
// Debian's /usr/lib/firefox-esr driven by puppeteer-core over WebDriver BiDi (no downloaded
// browser, no geckodriver), fake devices, the quiet prefs of firefox-prefs.mjs plus
// MOZ_DISABLE_NONLOCAL_CONNECTIONS=1. Against the real `wavegate` binary:
//   - a call to `echo`: ESTABLISHED, audio both ways (SDK getStats: 50+ packets each way,
//     inbound audio level > 0), hangup -> FINISH, the media session freed;
//   - a VP8 video call to `echo` (which echoes video): 10+ frames decoded in the page;
//   - a call to SIPp answering PCMU only: the server re-offers Opus capped at 8 kHz (`reoffer`),
//     the SDK answers it by itself and the media plane takes Firefox's answer (no `error`), the
//     page keeps sending (str0m <-> Firefox interop of the renegotiation; opus-reoffer.sh
//     checks the narrowband Opus itself with Chromium);
//   - alice registers at Kamailio and calls carol (baresip, Opus first) through it:
//     ESTABLISHED, inbound packets and audio level > 0, hangup -> FINISH, baresip received RTP.
// Screenshot in target/browser-artifacts/firefox-phone.png. Bounded waits, watchdog, cleanup.
//
// usage: node firefox.mjs --wavegate BIN
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { root, here, sleep, check, bounded, until, cleanup, startServer, startKamailio, startBaresip, startSipp, tempDir } from './lib.mjs';
import { prefs } from './firefox-prefs.mjs';

const label = 'firefox-phone';
const FIREFOX = process.env.WAVEGATE_FIREFOX || '/usr/lib/firefox-esr/firefox-esr';
const WATCHDOG_MS = 105000;
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let browser = null, server = null, baresip = null, page = null;
let failing = false;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  if (page) {
    const log = await bounded(page.evaluate(() => window.phone.log.slice(-20)), 2000, 'page log').catch(() => []);
    console.error(`${label}: the page's last log lines:\n${log.join('\n')}`);
  }
  if (server) console.error(`${label}: last server log lines:\n${server.log.slice(-15).join('\n')}`);
  if (baresip) console.error(`${label}: baresip log tail:\n${baresip.log().slice(-2000)}`);
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
  await cleanup();
  process.exit(1);
}

async function main() {
  check(existsSync(FIREFOX), `${FIREFOX} not found (scripts/deps.sh test installs firefox-esr)`);
  check(flags.wavegate && existsSync(flags.wavegate), `wavegate binary not found: ${flags.wavegate}`);
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  const artifacts = join(root, 'target', 'browser-artifacts');
  mkdirSync(artifacts, { recursive: true });
  server = await startServer(flags.wavegate, '42400-42499');
  console.log(`${label}: wavegate at ${server.url}`);

  const { default: puppeteer } = await import('puppeteer-core');
  let t0 = Date.now();
  browser = await bounded(puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, protocol: 'webDriverBiDi', headless: true,
    userDataDir: tempDir('wavegate-firefox-'), extraPrefsFirefox: prefs, timeout: 30000,
    env: { ...process.env, MOZ_DISABLE_NONLOCAL_CONNECTIONS: '1' },
  }), 40000, 'firefox launch');
  const figures = { browser: await browser.version(), launchMs: Date.now() - t0 };
  page = (await browser.pages())[0] || await browser.newPage();
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  await page.goto(`${server.url}phone.html`, { timeout: 15000 });
  await page.waitForFunction(() => window.phone !== undefined, { timeout: 5000 });

  const fill = (sel, v) => page.$eval(sel, (el, val) => { el.value = val; }, v);
  const status = (which, want, ms = 5000) => page.waitForFunction((w, s) => document.getElementById(`${w}Status`).textContent === s,
    { timeout: ms }, which, want);
  const text = sel => page.$eval(sel, el => el.textContent);
  const stats = () => page.evaluate(() => new Promise(res => window.phone.call.getStats(s => {
    const o = s.outboundStream.audioStats || {}, i = s.inboundStream.audioStats || {};
    res({ sent: o.packetsSent || 0, bytesSent: o.bytesSent || 0, received: i.packetsReceived || 0,
      bytesReceived: i.bytesReceived || 0, level: i.audioLevel || 0 });
  })));
  const audio = async what => {
    let best = { level: 0 };
    await until(async () => {
      const s = await stats();
      best = { ...s, level: Math.max(s.level, best.level) };
      return s.sent > 50 && s.received > 50 && best.level > 0;
    }, 10000, `${what}: 50+ packets each way and inbound audio level > 0 (last ${JSON.stringify(best)})`, 250);
    return best;
  };

  // 1. The built-in echo.
  await fill('#login', 'Ralf_C12441');
  await fill('#domain', 'host.com');
  await page.click('#connect');
  await status('session', 'ESTABLISHED');
  t0 = Date.now();
  await page.click('#call');
  await status('call', 'ESTABLISHED', 10000);
  figures.echoEstablishedMs = Date.now() - t0;
  figures.echo = await audio('echo call');
  const offer = await page.evaluate(() => window.phone.call.peerConnection().localDescription.sdp);
  figures.offeredAudio = (/m=audio [^\r\n]*/.exec(offer) || [''])[0];
  await page.screenshot({ path: join(artifacts, 'firefox-phone.png'), fullPage: true });
  await page.click('#hangup');
  await status('call', 'FINISH');
  await until(async () => (await server.health()).calls === 0, 3000, 'media deleted after hangup');
  console.log(`${label}: ${figures.browser}: echo ESTABLISHED in ${figures.echoEstablishedMs} ms, ${JSON.stringify(figures.echo)}; hangup -> FINISH; offer ${figures.offeredAudio}`);

  // 1b. A VP8 video call to echo (which echoes video): frames decoded in the page.
  const video = await page.evaluate(async () => {
    const call = window.phone.session.createCall({ callee: 'echo', constraints: { audio: true, video: true },
      receiveVideo: true, remoteVideoDisplay: document.getElementById('remote') });
    const up = new Promise((res, rej) => { call.on('ESTABLISHED', res); call.on('FAILED', c => rej(new Error(c.cause()))); });
    call.call();
    await up;
    const vs = async () => (await call.getStats(() => {})).inboundStream.videoStats || {};
    let got = {};
    for (let i = 0; i < 40 && !(got.framesDecoded > 10); i++) { await new Promise(r => setTimeout(r, 250)); got = await vs(); }
    const answer = call.peerConnection().remoteDescription.sdp;
    const sent = (await call.getStats(() => {})).outboundStream.videoStats || {};
    call.hangup();
    return { decoded: got.framesDecoded || 0, encoded: sent.framesEncoded || 0, videoLine: (/m=video [^\r\n]*/.exec(answer) || [''])[0],
      codec: (/a=rtpmap:\d+ (VP8|H264|VP9|AV1)/.exec(answer) || ['', ''])[1] };
  });
  figures.video = video;
  check(video.decoded > 10 && video.codec === 'VP8', `VP8 video call to echo: frames decoded in the page: ${JSON.stringify(video)}`);
  await status('call', 'FINISH');
  console.log(`${label}: VP8 video call to echo: ${video.decoded} frames decoded, ${video.encoded} encoded (${video.videoLine})`);

  // 1c. A call to SIPp answering PCMU only: transcoded, so the server re-offers Opus capped at
  // 8 kHz; the SDK answers it, and the media plane must take Firefox's answer.
  const sipp = await startSipp(join(here, '..', 'peers', 'sipp', 'uas_answer.xml'));
  const re = await bounded(page.evaluate(async callee => {
    const errors = [];
    window.phone.session.on('error', e => errors.push(e.reason));
    const call = window.phone.session.createCall({ callee, constraints: { audio: true, video: false } });
    const up = new Promise((res, rej) => { call.on('ESTABLISHED', res); call.on('FAILED', c => rej(new Error(c.cause()))); });
    call.call();
    await up;
    const pc = call.peerConnection();
    const reoffered = () => pc.remoteDescription && pc.remoteDescription.type === 'offer' && pc.signalingState === 'stable';
    for (let i = 0; i < 40 && !reoffered(); i++) await new Promise(r => setTimeout(r, 250));
    const sent0 = ((await call.getStats(() => {})).outboundStream.audioStats || {}).packetsSent || 0;
    await new Promise(r => setTimeout(r, 2000)); // the server would say `error` if it refused the answer
    const sent1 = ((await call.getStats(() => {})).outboundStream.audioStats || {}).packetsSent || 0;
    const fmtp = reoffered() ? ((/a=fmtp:\d+ [^\r\n]*maxplaybackrate[^\r\n]*/.exec(pc.remoteDescription.sdp) || [''])[0]) : '';
    const status = call.status();
    call.hangup();
    return { reoffered: reoffered(), fmtp, errors, sentAfter: sent1 - sent0, status };
  }, `bob@127.0.0.1:${sipp.port}`), 20000, 'PCMU call re-offered');
  figures.reoffer = re;
  check(re.reoffered && /maxplaybackrate=8000/.test(re.fmtp) && re.errors.length === 0 && re.status === 'ESTABLISHED'
    && re.sentAfter > 50, `PCMU call: re-offer answered by the SDK and taken by the media plane, media on: ${JSON.stringify(re)}`);
  await status('call', 'FINISH');
  const code = await bounded(sipp.exit, 15000, 'SIPp exit');
  check(code === 0, `SIPp exit ${code}:\n${sipp.logs()}`);
  console.log(`${label}: PCMU call re-offered (${re.fmtp}), answered, ${re.sentAfter} packets sent in the 2 s after`);
  await page.click('#disconnect');
  await status('session', 'DISCONNECTED');

  // 2. Through Kamailio to baresip.
  const kamailio = await startKamailio('proxy.cfg');
  baresip = await startBaresip(kamailio.port, 42500, { opus: true });
  await until(() => /AoR: carol/.test(kamailio.locations()), 10000, 'baresip (carol) registered at Kamailio', 200);
  await fill('#login', 'alice');
  await fill('#password', 'alicepw');
  await fill('#domain', '127.0.0.1');
  await fill('#port', String(kamailio.port));
  await page.click('#registerRequired');
  await page.click('#connect');
  await status('session', 'REGISTERED', 8000);
  await fill('#callee', 'carol');
  t0 = Date.now();
  await page.click('#call');
  await status('call', 'ESTABLISHED', 10000);
  figures.sipEstablishedMs = Date.now() - t0;
  figures.sip = await audio('call to baresip');
  await page.click('#hangup');
  await status('call', 'FINISH');
  await baresip.waitEvent('CALL_CLOSED', 1);
  const rx = await until(() => /packets:\s+(\d+)\s+(\d+)/.exec(baresip.log()), 3000, 'baresip RTP statistics');
  figures.baresipRtp = { sent: Number(rx[1]), received: Number(rx[2]) };
  check(figures.baresipRtp.received > 50, `baresip received the page's RTP: ${JSON.stringify(figures.baresipRtp)}`);
  console.log(`${label}: carol via Kamailio ESTABLISHED in ${figures.sipEstablishedMs} ms, ${JSON.stringify(figures.sip)}; hangup -> FINISH (${await text('#callCause')}); baresip RTP ${JSON.stringify(figures.baresipRtp)}`);

  await bounded(browser.close(), 10000, 'firefox close');
  browser = null;
  page = null;
  await cleanup();
  console.log(`${label}: PASS ${JSON.stringify(figures)}`);
}

main().catch(e => fail(e.stack || String(e)));
