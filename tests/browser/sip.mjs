// The Phone page against real SIP peers (sip.sh runs it inside a loopback-only network
// namespace): the real `wavegate` binary, Kamailio as registrar + proxy
// (tests/peers/kamailio/proxy.cfg: users alice/alicepw and carol/carolpw), baresip as carol
// (auto-answer, a 440 Hz sine as its microphone), SIPp for what baresip cannot show, and Debian's
// Chromium driven by playwright-core through the page's buttons and the SDK. Checks:
//   A. a wrong password: session FAILED "Registration failed: …" (never left PENDING);
//   B. alice registers through Kamailio; the page calls carol: ESTABLISHED, audio both ways
//      (page inbound packets > 0 and audio level > 0; baresip's RTP stats show packets
//      received); DTMF RFC2833 and INFO both reach baresip (its CALL_DTMF_START events); hold /
//      unhold reach baresip as re-INVITEs (and it stops sending while held); mute / unmute;
//      hangup from the page -> FINISH and baresip closes; a second call hung up by baresip ->
//      FINISH on the page; an incoming call from baresip through Kamailio: INCOMING_CALL,
//      Answer, audio, hangup;
//   C. SIPp (sipp/uas_features.xml, with RTP echo): getStats fields present and growing,
//      getMediaDevices kinds, switchMic during the call (a new device id, audio keeps flowing),
//      switchCam and setAudioOutputId errors are clear, hold seen as a=sendonly and unhold as
//      a=sendrecv by SIPp, INFO digit, sendMessage both ways, blind transfer (REFER to carol,
//      NOTIFY progress, FINISH); SIPp's exit status proves what the SIP side saw;
//   E. switchCam during a video call to echo (Chromium with three fake cameras): the promise
//      gives the other camera's id, the video sender uses it, frames keep being encoded;
//   D. a second server with ws.app_keys and a chrome codec rule: a missing or wrong app key
//      gives FAILED with a cause, the right one connects; the chrome rule (prefer PCMU) puts
//      PCMU first in the media plane's answer and the echo follows it; the same browser with an
//      Edge User-Agent gets the Edge rule (SILK, G722 and, in this test, PCMA stripped from what
//      reaches the media plane and the page).
// Screenshots in target/browser-artifacts/sip-*.png. Every wait is bounded; a watchdog ends the
// run; every child is killed on every path.
//
// usage: node sip.mjs --wavegate BIN
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  root, here, sleep, check, bounded, until, cleanup, startServer, startKamailio, startBaresip, startSipp,
  launchChromium, phonePage,
} from './lib.mjs';

const label = 'chromium-sip';
const WATCHDOG_MS = 150000;
const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let context = null, server = null, kamailio = null, baresip = null;
let failing = false, failHook = () => {};
async function fail(msg) {
  console.error(`${label}: FAILED: ${msg}`);
  if (failing) return;
  failing = true;
  await failHook();
  if (server) console.error(`${label}: last server log lines:\n${server.log.slice(-25).join('\n')}`);
  if (baresip) console.error(`${label}: baresip events: ${baresip.events.map(e => e.type || 'response').join(',')}\nbaresip log tail:\n${baresip.log().slice(-3000)}`);
  if (kamailio) console.error(`${label}: kamailio log tail:\n${kamailio.log().slice(-3000)}`);
  if (context) await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  await cleanup();
  process.exit(1);
}
const artifacts = join(root, 'target', 'browser-artifacts');

async function main() {
  check(flags.wavegate && existsSync(flags.wavegate), `wavegate binary not found: ${flags.wavegate}`);
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  mkdirSync(artifacts, { recursive: true });
  server = await startServer(flags.wavegate, '42200-42299');
  kamailio = await startKamailio('proxy.cfg');
  baresip = await startBaresip(kamailio.port, 42300, { opus: true });
  await until(() => /AoR: carol/.test(kamailio.locations()), 10000, 'baresip (carol) registered at Kamailio', 200);
  console.log(`${label}: wavegate at ${server.url}, kamailio on ${kamailio.port}, baresip carol registered`);

  context = await launchChromium();
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  failHook = async () => {
    const log = await bounded(page.evaluate(() => window.phone.log.slice(-25)), 2000, 'page log').catch(() => []);
    console.error(`${label}: the page's last log lines:\n${log.join('\n')}`);
  };
  await page.goto(`${server.url}phone.html`, { timeout: 10000 });
  await page.waitForFunction(() => window.phone !== undefined, null, { timeout: 5000 });
  const p = phonePage(page);
  const figures = { browser: context.browser() ? context.browser().version() : '' };

  // A. Wrong password: a clear registration failure.
  await page.fill('#login', 'alice');
  await page.fill('#password', 'not-alices-password');
  await page.fill('#domain', '127.0.0.1');
  await page.fill('#port', String(kamailio.port));
  await page.check('#registerRequired');
  let t0 = Date.now();
  await page.click('#connect');
  await p.status('session', 'FAILED', 10000);
  figures.wrongPasswordMs = Date.now() - t0;
  const wrong = await p.text('#sessionCause');
  check(/Registration failed/.test(wrong) && /40[13]|[Uu]nauthori[sz]ed|[Ff]orbidden|credentials/.test(wrong), `wrong password cause: ${wrong}`);
  await page.screenshot({ path: join(artifacts, 'sip-wrong-password.png'), fullPage: true });
  console.log(`${label}: wrong password -> FAILED in ${figures.wrongPasswordMs} ms ${wrong}`);

  // B. alice registers; calls carol (baresip) through Kamailio.
  await page.fill('#password', 'alicepw');
  t0 = Date.now();
  await page.click('#connect');
  await p.status('session', 'REGISTERED', 8000);
  figures.registeredMs = Date.now() - t0;
  await page.fill('#callee', 'carol');
  let mark = await p.logLen();
  t0 = Date.now();
  await page.click('#call');
  await p.status('call', 'ESTABLISHED', 10000);
  figures.establishedMs = Date.now() - t0;
  figures.callStates = (await p.logFrom(mark)).filter(l => l.startsWith('call '));
  await baresip.waitEvent('CALL_ESTABLISHED', 1);
  let best = { received: 0, level: 0 };
  await until(async () => {
    const s = await p.stats();
    if (s.level > best.level || s.received > best.received) best = { ...s, level: Math.max(s.level, best.level) };
    return s.received > 50 && best.level > 0 && s.sent > 50;
  }, 10000, 'audio from baresip (inbound packets > 50, audio level > 0)', 200);
  figures.audio = best;
  console.log(`${label}: call carol via Kamailio: ${figures.callStates.join(', ')} in ${figures.establishedMs} ms; page ${JSON.stringify(best)}`);

  // DTMF both ways of sending: baresip reports each digit it gets.
  await page.selectOption('#dtmfType', 'RFC2833');
  await page.click('#keypad button[data-digit="1"]');
  const d1 = await baresip.waitEvent('CALL_DTMF_START', 1, 5000);
  await page.selectOption('#dtmfType', 'INFO');
  await page.click('#keypad button[data-digit="5"]');
  const d2 = await baresip.waitEvent('CALL_DTMF_START', 2, 5000);
  check(String(d1.param) === '1' && String(d2.param) === '5', `baresip heard 1 (RFC2833) and 5 (INFO): ${JSON.stringify([d1, d2])}`);
  console.log(`${label}: DTMF at baresip: RFC2833 ${d1.param}, INFO ${d2.param}`);

  // Hold / unhold: re-INVITEs reach baresip; it stops sending while held.
  const sdpEvents = baresip.count('CALL_REMOTE_SDP');
  await page.click('#hold');
  await p.status('call', 'HOLD');
  await baresip.waitEvent('CALL_REMOTE_SDP', sdpEvents + 1);
  await sleep(400);
  const h0 = await p.stats(); await sleep(1500); const h1 = await p.stats();
  await page.click('#unhold');
  await p.status('call', 'ESTABLISHED');
  await baresip.waitEvent('CALL_REMOTE_SDP', sdpEvents + 2);
  await sleep(400);
  const u0 = await p.stats(); await sleep(1500); const u1 = await p.stats();
  figures.hold = { receivedHeld: h1.received - h0.received, receivedAfter: u1.received - u0.received, sentHeld: h1.sent - h0.sent };
  check(figures.hold.receivedHeld <= 5 && figures.hold.receivedAfter > 30, `baresip silent on hold, back after: ${JSON.stringify(figures.hold)}`);
  console.log(`${label}: hold/unhold at baresip ${JSON.stringify(figures.hold)}`);
  await page.screenshot({ path: join(artifacts, 'sip-baresip-call.png'), fullPage: true });

  // Hangup from the page.
  await page.click('#hangup');
  await p.status('call', 'FINISH');
  await baresip.waitEvent('CALL_CLOSED', 1);
  await until(async () => (await server.health()).calls === 0, 3000, 'media deleted after hangup');
  // With rtp_stats, baresip logs "packets:  <transmitted>  <received>" when the call closes.
  const rx = await until(() => /packets:\s+(\d+)\s+(\d+)/.exec(baresip.log()), 3000, 'baresip RTP statistics in its log');
  figures.baresipRtp = { sent: Number(rx[1]), received: Number(rx[2]) };
  check(figures.baresipRtp.received > 50, `baresip received RTP from the page: ${JSON.stringify(figures.baresipRtp)}`);
  console.log(`${label}: page hangup -> FINISH (${await p.text('#callCause')}), baresip CALL_CLOSED, its RTP ${JSON.stringify(figures.baresipRtp)}`);

  // Second call, hung up by baresip.
  await page.click('#call');
  await p.status('call', 'ESTABLISHED', 10000);
  await baresip.waitEvent('CALL_ESTABLISHED', 2);
  await sleep(500);
  await baresip.command('hangup');
  await p.status('call', 'FINISH', 5000);
  console.log(`${label}: baresip hangup -> FINISH (${await p.text('#callCause')})`);

  // Incoming call from baresip through Kamailio to the registered page.
  await baresip.command('dial', `sip:alice@127.0.0.1:${kamailio.port}`);
  await p.status('call', 'RING', 8000);
  const from = await p.text('#callCause');
  t0 = Date.now();
  await page.click('#answer');
  await p.status('call', 'ESTABLISHED', 8000);
  figures.incomingMs = Date.now() - t0;
  const inc = await until(async () => { const s = await p.stats(); return s.received > 30 && s; }, 8000, 'incoming call audio from baresip', 200);
  await page.click('#hangup');
  await p.status('call', 'FINISH');
  await baresip.waitEvent('CALL_CLOSED', 3);
  console.log(`${label}: incoming from baresip ${from}: Answer -> ESTABLISHED in ${figures.incomingMs} ms, received ${inc.received}; hangup -> FINISH`);
  await page.click('#disconnect');
  await p.status('session', 'DISCONNECTED', 5000);

  // C. In-call features against SIPp.
  const sipp = await startSipp(join(here, 'sipp', 'uas_features.xml'), { rtpEcho: true });
  await page.uncheck('#registerRequired');
  await page.click('#connect');
  await p.status('session', 'ESTABLISHED');
  await page.fill('#callee', `features@127.0.0.1:${sipp.port}`);
  await page.click('#call');
  await p.status('call', 'ESTABLISHED', 10000);
  const s0 = await until(async () => { const s = await p.stats(); return s.received > 20 && s; }, 8000, 'SIPp echo flowing', 200);
  await sleep(1000);
  const s1 = await p.stats();
  const fields = await page.evaluate(() => window.phone.call.getStats(() => {}));
  const o = fields.outboundStream.audioStats, i = fields.inboundStream.audioStats;
  check(o && typeof o.bytesSent === 'number' && typeof o.packetsSent === 'number', `outboundStream.audioStats: ${JSON.stringify(o)}`);
  check(i && typeof i.bytesReceived === 'number' && typeof i.packetsReceived === 'number', `inboundStream.audioStats: ${JSON.stringify(i)}`);
  check(s1.sent > s0.sent && s1.bytesSent > s0.bytesSent && s1.received > s0.received && s1.bytesReceived > s0.bytesReceived,
    `getStats growing: ${JSON.stringify([s0, s1])}`);
  console.log(`${label}: getStats growing over 1 s: sent ${s0.sent}->${s1.sent}, received ${s0.received}->${s1.received}`);

  // Devices: kinds, switching the microphone during the call, clear errors.
  const devices = await page.evaluate(async () => {
    document.getElementById('listDevices').click();
    const { getMediaDevices, MEDIA_DEVICE_KIND } = await import('/sdk/wavegate.js');
    return getMediaDevices(null, true, MEDIA_DEVICE_KIND.ALL);
  });
  const kinds = [...new Set(devices.map(d => d.type))].sort();
  figures.devices = devices.map(d => `${d.type}:${d.label}`);
  check(kinds.includes('mic') && kinds.includes('camera') && kinds.includes('speaker'), `device kinds mic/camera/speaker: ${JSON.stringify(figures.devices)}`);
  const sw = await page.evaluate(async () => {
    const c = window.phone.call;
    const before = c._local.getAudioTracks()[0].getSettings().deviceId;
    const after = await c.switchMic();
    const now = c.peerConnection().getSenders().find(s => s.track && s.track.kind === 'audio').track.getSettings().deviceId;
    let cam = '';
    try { await c.switchCam(); } catch (e) { cam = `${e.name}: ${e.message}`; }
    let sink = '';
    await c.setAudioOutputId('default').then(() => { sink = 'ok'; }, e => { sink = `${e.name}: ${e.message}`; });
    const saved = HTMLMediaElement.prototype.setSinkId;
    delete HTMLMediaElement.prototype.setSinkId;
    let noSink = '';
    try { await c.setAudioOutputId('default'); } catch (e) { noSink = `${e.name}: ${e.message}`; }
    HTMLMediaElement.prototype.setSinkId = saved;
    return { before, after, now, cam, sink, noSink };
  });
  figures.switchMic = sw;
  check(sw.after && sw.after !== sw.before && sw.after === sw.now, `switchMic resolves to the new device sending: ${JSON.stringify(sw)}`);
  check(/WavegateError: switchCam: the call sends no video/.test(sw.cam), `switchCam on an audio call: clear error: ${sw.cam}`);
  check(sw.sink === 'ok', `setAudioOutputId('default') in Chromium: ${sw.sink}`);
  check(/WavegateError: .*setSinkId/.test(sw.noSink), `setAudioOutputId without setSinkId: clear error: ${sw.noSink}`);
  const m0 = await p.stats(); await sleep(1000); const m1 = await p.stats();
  check(m1.sent - m0.sent > 30 && m1.received - m0.received > 30, `audio keeps flowing after switchMic: ${JSON.stringify([m0, m1])}`);
  console.log(`${label}: devices ${kinds.join('/')} (${devices.length}); switchMic ${sw.before.slice(0, 8)} -> ${sw.after.slice(0, 8)}; switchCam: ${sw.cam}; no setSinkId: ${sw.noSink}`);

  // Mute: the echo of our own audio goes silent (inbound energy stops growing), unmute restores it.
  const energy = async ms => { const a = await p.stats(); await sleep(ms); const b = await p.stats(); return b.energy - a.energy; };
  const eOn = await energy(1500);
  await page.click('#mute');
  check(await page.evaluate(() => window.phone.call.isAudioMuted()), 'isAudioMuted after Mute');
  await sleep(500);
  const eMuted = await energy(1500);
  await page.click('#mute');
  await sleep(500);
  const eBack = await energy(1500);
  figures.muteEnergy = { unmuted: eOn, muted: eMuted, back: eBack };
  check(eOn > 0 && eMuted < eOn / 10 && eBack > eMuted * 10, `mute silences the echo: ${JSON.stringify(figures.muteEnergy)}`);
  console.log(`${label}: mute/unmute inbound energy ${JSON.stringify(figures.muteEnergy)}`);

  // Hold / unhold: SIPp checks a=sendonly and a=sendrecv in our re-INVITEs.
  await page.click('#hold');
  await p.status('call', 'HOLD');
  await page.click('#unhold');
  await p.status('call', 'ESTABLISHED');
  // INFO digit, messages both ways.
  await page.selectOption('#dtmfType', 'INFO');
  await page.click('#keypad button[data-digit="5"]');
  await page.fill('#messageText', 'hello from the page');
  await page.click('#sendMessage');
  await page.waitForFunction(() => document.getElementById('messages').textContent.includes('[hello from sipp'), null, { timeout: 5000 });
  // Blind transfer to carol: REFER, NOTIFY progress, then the call ends.
  mark = await p.logLen();
  await page.fill('#transferTarget', 'carol');
  await page.click('#transfer');
  await p.status('call', 'FINISH', 8000);
  figures.transfer = (await p.logFrom(mark)).filter(l => /transfer|call FINISH/.test(l));
  check(figures.transfer.some(l => /transfer succeeded: 200/.test(l)), `transfer progress on the page: ${JSON.stringify(figures.transfer)}`);
  await page.screenshot({ path: join(artifacts, 'sip-features.png'), fullPage: true });
  const code = await bounded(sipp.exit, 8000, 'SIPp features scenario ends');
  check(code === 0, `SIPp saw sendonly/sendrecv, INFO 5, the MESSAGE and the REFER (exit ${code}):\n${sipp.logs()}`);
  console.log(`${label}: SIPp: hold sendonly, unhold sendrecv, INFO 5, MESSAGE both ways, transfer ${figures.transfer.join(' | ')}; exit 0`);

  // E. switchCam during a video call to echo (fake cameras: device-count=3): resolves to the
  // chosen camera's id, which the video sender then uses, and frames keep being encoded. The
  // switch goes to the third fake camera: Chromium's second fake camera gives frames a <video>
  // element plays but its WebRTC encoder never takes (its fake devices differ in pixel format;
  // the second is most likely the Y16 depth format), so switching to it stalls any page.
  const cam = await page.evaluate(async () => {
    const call = window.phone.session.createCall({ callee: 'echo', constraints: { audio: true, video: true }, receiveVideo: true });
    const up = new Promise((res, rej) => { call.on('ESTABLISHED', res); call.on('FAILED', c => rej(new Error(c.cause()))); });
    call.call();
    await up;
    const frames = async () => ((await call.getStats(() => {})).outboundStream.videoStats || {}).framesEncoded || 0;
    const wait = ms => new Promise(r => setTimeout(r, ms));
    await wait(1000);
    const b0 = await frames(); await wait(1000); const b1 = await frames();
    const before = call._local.getVideoTracks()[0].getSettings().deviceId;
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === 'videoinput').map(d => d.deviceId);
    const after = await call.switchCam(cams[2]);
    const sending = call.peerConnection().getSenders().find(s => s.track && s.track.kind === 'video').track.getSettings().deviceId;
    await wait(1000);
    const f0 = await frames(); await wait(2000); const f1 = await frames();
    call.hangup();
    const live = call.peerConnection().getSenders().find(s => s.track && s.track.kind === 'video').track.readyState;
    return { before, after, sending, live, framesBeforeSwitch: b1 - b0, framesAfterSwitch: f1 - f0 };
  });
  check(cam.after && cam.after !== cam.before && cam.sending === cam.after && cam.live === 'live' && cam.framesBeforeSwitch > 5
    && cam.framesAfterSwitch > 10,
    `switchCam during a video call: ${JSON.stringify(cam)}`);
  figures.switchCam = cam;
  console.log(`${label}: switchCam ${cam.before.slice(0, 8)} -> ${cam.after.slice(0, 8)}; frames encoded: ${cam.framesBeforeSwitch} in 1 s before, ${cam.framesAfterSwitch} in 2 s after`);
  await until(async () => (await server.health()).calls === 0, 5000, 'video call ended');

  // D. App key and per-browser codec policy, on a second server configured through the
  // environment: ws.app_keys = ["sesame"], ws.codecs.chrome.prefer = ["PCMU"] (and the default
  // Edge rule: strip SILK, G722).
  const keyed = await startServer(flags.wavegate, '42600-42699', {
    WAVEGATE_WS__APP_KEYS: '["sesame"]', WAVEGATE_WS__CODECS__CHROME__PREFER: '["PCMU"]',
    // The default Edge rule plus PCMA, which (unlike SILK and G722) this media plane would
    // otherwise answer, so the stripping shows in the answer the page gets.
    WAVEGATE_WS__CODECS__EDGE__STRIP: '["SILK", "G722", "PCMA"]' });
  await page.goto(`${keyed.url}phone.html`, { timeout: 10000 });
  await page.waitForFunction(() => window.phone !== undefined, null, { timeout: 5000 });
  await page.fill('#login', 'Ralf_C12441');
  await page.fill('#domain', 'host.com');
  for (const [key, want] of [['', /^\(appKey: missing/], ['open-please', /^\(appKey: not accepted/]]) {
    await page.fill('#appKey', key);
    await page.click('#connect');
    await p.status('session', 'FAILED');
    const why = await p.text('#sessionCause');
    check(want.test(why), `app key ${JSON.stringify(key)} refused with a cause: ${why}`);
  }
  await page.fill('#appKey', 'sesame');
  await page.click('#connect');
  await p.status('session', 'ESTABLISHED');
  const answerOf = async () => {
    await page.fill('#callee', 'echo');
    await page.click('#call');
    await p.status('call', 'ESTABLISHED', 10000);
    const sdp = await page.evaluate(() => ({ offer: window.phone.call.peerConnection().localDescription.sdp,
      answer: window.phone.call.peerConnection().remoteDescription.sdp }));
    await until(async () => (await p.stats()).received > 10, 5000, 'echo audio with the policy', 200);
    await page.click('#hangup');
    await p.status('call', 'FINISH');
    return { offer: /m=audio [^\r\n]*/.exec(sdp.offer)[0], answer: /m=audio [^\r\n]*/.exec(sdp.answer)[0], pcma: /PCMA/i.test(sdp.answer) };
  };
  const chrome = await answerOf();
  check(/^m=audio \d+ \S+ 0( |$)/.test(chrome.answer) && chrome.pcma, `chrome policy prefers PCMU, keeps PCMA: ${JSON.stringify(chrome)}`);
  // The same Chromium presenting itself as Edge (its WebSocket handshake carries the UA).
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.setUserAgentOverride', { userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36 Edg/156.0.0.0' });
  await page.click('#disconnect');
  await p.status('session', 'DISCONNECTED');
  await page.click('#connect');
  await p.status('session', 'ESTABLISHED');
  const edge = await answerOf();
  check(/ 8( |$)/.test(edge.offer) && !edge.pcma && / 8( |$)/.test(chrome.answer) && !/ 8( |$)/.test(edge.answer)
    && /^m=audio \d+ \S+ 111( |$)/.test(edge.answer), `edge policy strips PCMA (and SILK, G722), chrome's prefer does not apply: ${JSON.stringify(edge)}`);
  figures.codecPolicy = { chrome, edge };
  console.log(`${label}: app key: missing/wrong -> FAILED, right -> ESTABLISHED; codec policy: chrome ${chrome.answer}, edge ${edge.answer} (offered ${edge.offer})`);

  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  await cleanup();
  console.log(`${label}: PASS ${JSON.stringify(figures)}`);
}

main().catch(e => fail(e.stack || String(e)));
