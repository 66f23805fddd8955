// The Phone Video page test (phone-video.sh runs it inside a loopback-only network namespace):
// starts the real `wavegate` binary (it spawns the media plane) on free loopback ports, drives
// Debian's /usr/bin/chromium (fake camera and microphone) with playwright-core to
// /phone-video.html and checks, through the page's controls and the JS SDK:
//   - the fake camera is listed and chosen (constraints {video: {width: 320, height: 240,
//     deviceId: {exact}}}): the local track has that device and size;
//   - a call to `echo` with VP8 and one with H.264 (the page's codec choice, the SDK's videoCodec)
//     reach ESTABLISHED; the SDK's getStats shows video encoded and the echo
//     decoded (framesDecoded > 20, in the chosen codec, through the media plane and the echo
//     extension's video socket); the remote <video> in the page's display shows 320x240;
//   - the server's /health shows the call, hangup gives FINISH and frees it.
// Every wait is bounded; a watchdog ends the run; the browser and the server are closed or killed
// on every path. RTP ports 28000-28099.
//
// usage: node phone-video.mjs --wavegate BIN
import { sleep, check, bounded, until, cleanup, startServer, launchChromium } from './lib.mjs';

const WATCHDOG_MS = 60000;
const label = 'chromium-phone-video';
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let server = null, context = null;
let failing = false;
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  if (server) console.error(`${label}: last server log lines:\n${server.log.slice(-20).join('\n')}`);
  if (context) await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  await cleanup();
  process.exit(1);
}

async function main() {
  check(flags.wavegate, 'usage: node phone-video.mjs --wavegate BIN');
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  server = await startServer(flags.wavegate, '28000-28099');
  const { url, health } = server;
  context = await launchChromium();
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
  // One call per codec the page offers alone (the SDK's videoCodec): VP8, then H.264 42e01f.
  for (const codec of ['VP8', 'H264']) {
    const f = figures[codec] = {};
    await page.selectOption('#videoCodec', codec);
    const t0 = Date.now();
    await page.click('#call');
    await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 10000 });
    f.establishedMs = Date.now() - t0;

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
    f.video = await until(async () => { const s = await stats(); return s.framesDecoded > 20 && s.shown === '320x240' && s; },
      15000, 'echoed video decoded (20 frames) and shown at 320x240', 250);
    f.videoMs = Date.now() - t0;
    check(f.video.framesEncoded > 20 && f.video.audioReceived > 50, `video encoded and audio back: ${JSON.stringify(f.video)}`);
    f.codec = await page.evaluate(async () => {
      const r = await window.phoneVideo.call.peerConnection().getStats();
      let c = null;
      r.forEach(v => { if (v.type === 'inbound-rtp' && v.kind === 'video') c = r.get(v.codecId); });
      return c && c.mimeType;
    });
    check(f.codec === `video/${codec}`, `echoed video codec ${f.codec}, chosen ${codec}`);
    check((await health()).calls === 1, '/health shows the call');
    console.log(`${label}: ${codec}: ESTABLISHED in ${f.establishedMs} ms; echoed video ${f.codec} decoded after ${f.videoMs} ms: ${JSON.stringify(f.video)}`);

    await page.click('#hangup');
    await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 5000 });
    await until(async () => (await health()).calls === 0, 3000, 'hangup frees the media session');
  }
  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  await cleanup();
  console.log(`${label}: PASS ${JSON.stringify(figures)}`);
}

main().catch(e => fail(e.stack || String(e)));
