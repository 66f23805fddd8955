// The Phone page test (phone.sh runs it inside a loopback-only network namespace): starts the real
// `wavegate` binary (it spawns the media plane) on free loopback ports, drives Debian's
// /usr/bin/chromium with playwright-core to /phone.html and checks, through the page's buttons and
// the JS SDK:
//   - malformed JSON and an unknown type on /ws get `error` messages naming the problem, and the
//     session stays (a ping after them gets its pong);
//   - the seed's illegal login `Ralf C12441@host.com` gives session FAILED at once, cause naming
//     the login field;
//   - a call to `echo` reaches ESTABLISHED, audio flows both ways (SDK getStats), DTMF RFC2833
//     comes back from the echo peer and INFO is acknowledged, hold stops the echo and unhold
//     resumes it, hangup gives FINISH and frees the media session; closing the session with a
//     call up ends that call too (the server's /health shows 0 calls);
//   - REST call/startup with the page's session: the SDK places the call (startCall), it reaches
//     ESTABLISHED with echo audio, call/find shows it, call/terminate gives FINISH;
//   - the seed-compatible `Flashphoner` global exists;
//   - a call to a SIP callee (SIPp answering Opus with -rtp_echo, sipp/uas_opus_echo.xml) goes
//     RING (Ringing) -> ESTABLISHED, audio both ways through the media plane, hangup -> FINISH,
//     SIPp's scenario passes (it got our BYE);
//   - registerRequired: a dead registrar gives session FAILED "Registration failed: …"; SIPp as
//     registrar gives REGISTERED, and closing the session un-REGISTERs;
//   - an incoming call from SIPp to the registered login: RING, Answer, ESTABLISHED, audio back
//     from SIPp's RTP echo, SIPp's BYE gives FINISH.
// Every wait is bounded; a watchdog ends the run; the browser and the server are closed or killed
// on every path. A screenshot of the page is kept in target/browser-artifacts/phone.png.
//
// usage: node phone.mjs --wavegate BIN
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  root, here, SIPP, sleep, check, bounded, until, freeUdpPort, cleanup, track, tempDir, startServer,
  launchChromium,
} from './lib.mjs';

const WATCHDOG_MS = 90000;
const label = 'chromium-phone';

const flags = {};
for (let i = 2; i < process.argv.length; i++) if (process.argv[i].startsWith('--')) flags[process.argv[i].slice(2)] = process.argv[++i];

let server = null, context = null;
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

async function main() {
  check(flags.wavegate, 'usage: node phone.mjs --wavegate BIN');
  setTimeout(() => fail(`watchdog: not done within ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
  server = await startServer(flags.wavegate, '42000-42099');
  const { url, health } = server;
  console.log(`${label}: wavegate at ${url}`);
  context = await launchChromium();
  const page = context.pages()[0] || await context.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  page.on('pageerror', e => console.log(`[page] uncaught: ${e.message}`));
  await page.goto(`${url}phone.html`, { timeout: 10000 });
  await page.waitForFunction(() => window.phone !== undefined, null, { timeout: 5000 });
  const figures = { browser: context.browser() ? context.browser().version() : '' };

  // 1. Protocol errors keep the session.
  const proto = await page.evaluate(() => new Promise((res, rej) => {
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws`);
    const got = [];
    const t = setTimeout(() => { ws.close(); rej(new Error(`raw /ws: got ${JSON.stringify(got)}`)); }, 5000);
    ws.onopen = () => { ws.send('{oops'); ws.send('{"type":"dance"}'); ws.send('{"type":"ping"}'); };
    ws.onmessage = e => { got.push(JSON.parse(e.data)); if (got.length === 3) { clearTimeout(t); ws.close(); res(got); } };
  }));
  check(proto[0].type === 'error' && /malformed JSON/.test(proto[0].reason), `malformed JSON: ${JSON.stringify(proto[0])}`);
  check(proto[1].type === 'error' && /unknown message type "dance"/.test(proto[1].reason), `unknown type: ${JSON.stringify(proto[1])}`);
  check(proto[2].type === 'pong', `session kept after errors (pong): ${JSON.stringify(proto[2])}`);
  console.log(`${label}: protocol errors: ${proto.slice(0, 2).map(m => m.reason).join(' | ')}; then pong`);

  // 2. Seed-compatible global.
  const compat = await page.evaluate(() => typeof Flashphoner === 'object' && typeof Flashphoner.createSession === 'function'
    && Flashphoner.constants.SESSION_STATUS.ESTABLISHED === 'ESTABLISHED' && Flashphoner.constants.CALL_STATUS.FINISH === 'FINISH');
  check(compat, 'Flashphoner global with createSession and constants');

  // 3. The seed's illegal login fails at once, naming the field.
  const text = sel => page.locator(sel).textContent({ timeout: 2000 });
  await page.fill('#login', 'Ralf C12441@host.com');
  await page.fill('#domain', 'host.com');
  await page.fill('#visibleName', 'Ralf C');
  let t0 = Date.now();
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'FAILED', null, { timeout: 3000 });
  figures.illegalLoginMs = Date.now() - t0;
  const cause = await text('#sessionCause');
  check(/^\(login: /.test(cause), `FAILED cause names the login field: ${cause}`);
  console.log(`${label}: illegal login -> FAILED in ${figures.illegalLoginMs} ms ${cause}`);

  // 4. The right form connects; call echo.
  await page.fill('#login', 'Ralf_C12441');
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'ESTABLISHED', null, { timeout: 5000 });
  check((await page.inputValue('#callee')) === 'echo', 'callee defaults to echo');
  t0 = Date.now();
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 10000 });
  figures.establishedMs = Date.now() - t0;
  const stats = () => page.evaluate(() => new Promise(res => window.phone.call.getStats(s => res({
    sent: (s.outboundStream.audioStats || {}).packetsSent || 0, bytesSent: (s.outboundStream.audioStats || {}).bytesSent || 0,
    received: (s.inboundStream.audioStats || {}).packetsReceived || 0, bytesReceived: (s.inboundStream.audioStats || {}).bytesReceived || 0,
    level: (s.inboundStream.audioStats || {}).audioLevel || 0 }))));
  const flowing = await until(async () => { const s = await stats(); return s.sent > 100 && s.received > 100 && s; }, 10000, 'audio both ways (100 packets each)', 250);
  figures.mediaMs = Date.now() - t0;
  figures.flowing = flowing;
  const h = await health();
  check(h.calls === 1, `/health shows the call: ${h.calls}`);
  console.log(`${label}: ESTABLISHED in ${figures.establishedMs} ms; 100 packets both ways after ${figures.mediaMs} ms: ${JSON.stringify(flowing)}`);

  // 5. DTMF: RFC 2833 digits reach the echo peer (reported back), INFO is acknowledged.
  for (const d of ['1', '#']) {
    const before = await text('#dtmfHeard');
    await page.click(`#keypad button[data-digit="${d}"]`);
    await page.waitForFunction(([b, d]) => document.getElementById('dtmfHeard').textContent === b + d, [before, d], { timeout: 3000 });
  }
  await page.selectOption('#dtmfType', 'INFO');
  await page.click('#keypad button[data-digit="5"]');
  await page.waitForFunction(() => document.getElementById('dtmfHeard').textContent === '1#5', null, { timeout: 3000 });
  console.log(`${label}: DTMF heard by the far side: 1# (RFC2833), 5 (INFO)`);

  // 6. Hold stops the echo; unhold resumes it.
  await page.click('#hold');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'HOLD', null, { timeout: 3000 });
  await sleep(300); // packets already in flight
  const h0 = await stats(); await sleep(1500); const h1 = await stats();
  await page.click('#unhold');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 3000 });
  await sleep(300);
  const u0 = await stats(); await sleep(1500); const u1 = await stats();
  figures.hold = { receivedDuringHold: h1.received - h0.received, sentDuringHold: h1.sent - h0.sent, receivedAfterUnhold: u1.received - u0.received };
  check(figures.hold.sentDuringHold > 30, `the browser keeps sending on hold: ${JSON.stringify(figures.hold)}`);
  check(figures.hold.receivedDuringHold <= 5, `no echo on hold: ${JSON.stringify(figures.hold)}`);
  check(figures.hold.receivedAfterUnhold > 30, `echo after unhold: ${JSON.stringify(figures.hold)}`);
  console.log(`${label}: hold/unhold ${JSON.stringify(figures.hold)}`);
  mkdirSync(join(root, 'target', 'browser-artifacts'), { recursive: true });
  await page.screenshot({ path: join(root, 'target', 'browser-artifacts', 'phone.png'), fullPage: true });

  // 7. Hangup gives FINISH and frees the media session.
  await page.click('#hangup');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 3000 });
  await until(async () => (await health()).calls === 0, 3000, 'media session deleted after hangup');
  console.log(`${label}: hangup -> FINISH (${await text('#callCause')}), /health calls 0`);

  // 7b. REST call/startup with this session: the SDK places the call (startCall), the page shows
  // it, call/find sees it ESTABLISHED, call/terminate ends it with FINISH.
  const rest = async (path, body) => {
    const r = await bounded(fetch(`${url}rest-api/${path}`, { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }), 3000, `POST ${path}`);
    const j = await r.json().catch(() => ({}));
    check(r.ok, `POST ${path} -> ${r.status} ${JSON.stringify(j)}`);
    return j;
  };
  const sessions = await rest('session/find_all', {});
  const listed = JSON.stringify(sessions);
  const mine = (Array.isArray(sessions) ? sessions : [])
    .filter(x => x.login === 'Ralf_C12441' && x.status === 'ESTABLISHED');
  check(mine.length === 1, `session/find_all lists the page's one live session: ${listed}`);
  const sessionId = mine[0].sessionId;
  check(sessionId, `session/find_all lists the page's session: ${listed}`);
  const restCallId = `rest-${Date.now().toString(36)}`;
  t0 = Date.now();
  await rest('call/startup', { sessionId, callee: 'echo', callId: restCallId });
  await page.waitForFunction(id => window.phone.call && window.phone.call.id() === id
    && document.getElementById('callStatus').textContent === 'ESTABLISHED', restCallId, { timeout: 10000 });
  figures.restStartupMs = Date.now() - t0;
  const found = JSON.stringify(await rest('call/find', { callId: restCallId }));
  check(/ESTABLISHED/.test(found), `call/find shows the REST-started call ESTABLISHED: ${found}`);
  await until(async () => { const s = await stats(); return s.received > 20 && s; }, 5000, 'echo audio on the REST-started call', 250);
  await rest('call/terminate', { callId: restCallId });
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 3000 });
  await until(async () => (await health()).calls === 0, 3000, 'media session deleted after call/terminate');
  console.log(`${label}: REST call/startup -> page call ${restCallId} ESTABLISHED in ${figures.restStartupMs} ms, audio back; call/terminate -> FINISH`);

  // 8. Closing the session with a call up ends the call.
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 10000 });
  await until(async () => (await health()).calls === 1, 3000, 'second call on the media plane');
  // Close the WebSocket itself (Disconnect would hang up first): the server must end the call.
  await page.evaluate(() => window.phone.session._ws.close());
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'DISCONNECTED', null, { timeout: 3000 });
  await until(async () => (await health()).calls === 0, 3000, 'session close ends its call');
  console.log(`${label}: WebSocket closed with a call up -> DISCONNECTED, call ${await text('#callStatus')}, /health calls 0`);

  // 9. A SIP call: SIPp answers Opus and echoes RTP (-rtp_echo); through the media plane.
  const sipPort = await freeUdpPort(), sipMedia = await freeUdpPort();
  let sippDir = tempDir('wavegate-sipp-');
  let sipp = track(spawn(SIPP, ['-sf', join(here, 'sipp', 'uas_opus_echo.xml'), '-i', '127.0.0.1', '-p', String(sipPort),
    '-mi', '127.0.0.1', '-mp', String(sipMedia), '-rtp_echo', '-m', '1', '-nostdin', '-timeout', '40s', '-trace_err'],
    { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] }));
  const sippExit = new Promise(res => sipp.once('exit', code => res(code)));
  await sleep(500); // SIPp binds
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'ESTABLISHED', null, { timeout: 5000 });
  await page.fill('#callee', `echo@127.0.0.1:${sipPort}`);
  const logFrom = await page.evaluate(() => window.phone.log.length);
  t0 = Date.now();
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 10000 });
  figures.sipEstablishedMs = Date.now() - t0;
  const sipLog = await page.evaluate(n => window.phone.log.slice(n).filter(l => / call /.test(l)).map(l => l.slice(13)), logFrom);
  check(sipLog.some(l => /RING \(Ringing\)/.test(l)), `RING (Ringing) reported: ${JSON.stringify(sipLog)}`);
  const sipFlow = await until(async () => { const s = await stats(); return s.sent > 100 && s.received > 100 && s; }, 10000, 'SIP call: audio both ways (100 packets each)', 250);
  figures.sip = { log: sipLog, flowing: sipFlow };
  await page.click('#hangup');
  await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 5000 });
  const code = await bounded(sippExit, 5000, 'SIPp exits after our BYE');
  check(code === 0, `SIPp scenario passed (exit ${code})`);
  await until(async () => (await health()).calls === 0, 3000, 'SIP call media deleted');
  console.log(`${label}: SIP call to SIPp: ${sipLog.join(', ')}; ESTABLISHED in ${figures.sipEstablishedMs} ms; ${JSON.stringify(sipFlow)}; hangup -> FINISH, SIPp exit 0`);

  // 10. Registration: a dead registrar gives FAILED with a cause (never PENDING); SIPp as the
  // registrar gives REGISTERED, and closing the session un-REGISTERs (SIPp's scenario ends).
  await page.evaluate(() => window.phone.session._ws.close());
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'DISCONNECTED', null, { timeout: 3000 });
  await page.fill('#domain', '127.0.0.1');
  await page.fill('#port', String(await freeUdpPort()));
  await page.check('#registerRequired');
  t0 = Date.now();
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'FAILED', null, { timeout: 15000 });
  figures.deadRegistrarMs = Date.now() - t0;
  const regCause = await text('#sessionCause');
  check(/Registration failed/.test(regCause), `dead registrar cause: ${regCause}`);
  console.log(`${label}: dead registrar -> FAILED in ${figures.deadRegistrarMs} ms ${regCause}`);
  await page.evaluate(() => window.phone.session._ws.close());
  const regPort = await freeUdpPort();
  sippDir = tempDir('wavegate-sipp-');
  sipp = track(spawn(SIPP, ['-sf', join(here, 'sipp', 'uas_register.xml'), '-i', '127.0.0.1', '-p', String(regPort),
    '-m', '1', '-nostdin', '-timeout', '30s', '-trace_err'], { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] }));
  const regExit = new Promise(res => sipp.once('exit', code => res(code)));
  await sleep(500);
  await page.fill('#port', String(regPort));
  t0 = Date.now();
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('sessionStatus').textContent === 'REGISTERED', null, { timeout: 5000 });
  figures.registeredMs = Date.now() - t0;
  const regOk = await text('#sessionCause');

  // 11. An incoming call from SIPp to the registered login: INCOMING_CALL (RING), Answer,
  // ESTABLISHED, audio from SIPp's RTP echo, SIPp's BYE -> FINISH.
  const uac = track(spawn(SIPP, [`127.0.0.1:${server.sipPort}`, '-sf', join(here, 'sipp', 'uac_to_page.xml'), '-s', 'Ralf_C12441',
    '-i', '127.0.0.1', '-p', String(await freeUdpPort()), '-mi', '127.0.0.1', '-mp', String(await freeUdpPort()),
    '-rtp_echo', '-m', '1', '-nostdin', '-timeout', '30s', '-trace_err'], { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] }));
  const uacExit = new Promise(res => uac.once('exit', code => res(code)));
  uac.stderr.on('data', d => server.log.push(`[sipp uac] ${d.toString().trim()}`));
  try {
    await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'RING', null, { timeout: 5000 });
    const from = await text('#callCause');
    t0 = Date.now();
    await page.click('#answer');
    await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'ESTABLISHED', null, { timeout: 8000 });
    figures.incomingEstablishedMs = Date.now() - t0;
    let best = { received: 0 };
    const end = Date.now() + 4000;
    while (Date.now() < end && best.received <= 20) {
      const st = await stats();
      if (st.received > best.received) best = st;
      await sleep(200);
    }
    figures.incoming = best;
    check(best.received > 20, `incoming call: audio received from SIPp's echo: ${JSON.stringify(best)}`);
    await page.waitForFunction(() => document.getElementById('callStatus').textContent === 'FINISH', null, { timeout: 8000 });
    const uacCode = await bounded(uacExit, 5000, 'SIPp caller ends');
    check(uacCode === 0, `SIPp caller scenario passed (exit ${uacCode})`);
    console.log(`${label}: incoming call ${from}: answered -> ESTABLISHED in ${figures.incomingEstablishedMs} ms; ${JSON.stringify(best)}; SIPp BYE -> FINISH (${await text('#callCause')}), SIPp exit 0`);
  } finally {
    if (uac.exitCode === null) uac.kill('SIGKILL');
  }
  await page.evaluate(() => window.phone.session._ws.close());
  const regCode = await bounded(regExit, 8000, 'SIPp registrar gets the un-REGISTER');
  check(regCode === 0, `SIPp registrar scenario passed (exit ${regCode})`);
  console.log(`${label}: REGISTERED in ${figures.registeredMs} ms ${regOk}; session close -> un-REGISTER, SIPp exit 0`);

  await bounded(context.close(), 10000, 'chromium close');
  context = null;
  await cleanup();
  console.log(`${label}: PASS ${JSON.stringify(figures)}`);
}

main().catch(e => fail(e.stack || String(e)));
