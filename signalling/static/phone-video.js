// The Phone Video page: a video call through the SDK (createCall with localVideoDisplay,
// remoteVideoDisplay, receiveVideo and camera constraints). State for tests and the console:
// window.phoneVideo = {session, call, log, lastStats, constraints}.
import { createSession, getMediaDevices, SESSION_STATUS, CALL_STATUS, MEDIA_DEVICE_KIND } from '/sdk/wavegate.js';

const $ = id => document.getElementById(id);
const pv = window.phoneVideo = { session: null, call: null, log: [], lastStats: null, constraints: null };
let statsTimer = null;

function log(line) {
  pv.log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  $('log').textContent = pv.log.slice(-20).join('\n');
}
function show(which, status, cause) {
  $(`${which}Status`).textContent = status;
  $(`${which}Status`).className = 'status ' + (['FAILED', 'BUSY', 'DISCONNECTED'].includes(status) ? 'bad' : 'ok');
  $(`${which}Cause`).textContent = cause ? `(${cause})` : '';
  log(`${which} ${status}${cause ? ` (${cause})` : ''}`);
}
function buttons() {
  const s = pv.session && pv.session.status();
  const connected = s === SESSION_STATUS.ESTABLISHED || s === SESSION_STATUS.REGISTERED;
  const c = pv.call && pv.call.status();
  const live = !!c && ![CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(c);
  $('connect').disabled = !!pv.session && s !== SESSION_STATUS.FAILED && s !== SESSION_STATUS.DISCONNECTED;
  $('disconnect').disabled = !pv.session || !$('connect').disabled;
  $('call').disabled = !connected || live;
  $('hangup').disabled = !live;
}

$('connect').onclick = () => {
  const sipOptions = { login: $('login').value.trim(), password: $('password').value, domain: $('domain').value.trim(),
    visibleName: $('login').value.trim() };
  show('session', 'PENDING', 'Connecting');
  try {
    pv.session = createSession({ urlServer: location.origin, sipOptions, appKey: $('appKey').value.trim() });
  } catch (e) {
    show('session', 'FAILED', e.message);
    return;
  }
  for (const st of Object.values(SESSION_STATUS)) pv.session.on(st, s => { show('session', st, s.cause()); buttons(); });
  buttons();
};
$('disconnect').onclick = () => { if (pv.session) pv.session.disconnect(); };

$('listDevices').onclick = async () => {
  try {
    const cams = (await getMediaDevices(null, true, MEDIA_DEVICE_KIND.INPUT)).filter(d => d.type === 'camera');
    $('camList').replaceChildren(new Option('(default)', ''), ...cams.map(d => new Option(d.label || d.id, d.id)));
    log(`${cams.length} camera(s)`);
  } catch (e) { log(`cameras: ${e.message}`); }
};

$('call').onclick = () => {
  $('local').replaceChildren();
  $('remote').replaceChildren();
  const video = { width: Number($('width').value) || 640, height: Number($('height').value) || 480 };
  if ($('camList').value) video.deviceId = { exact: $('camList').value };
  pv.constraints = { audio: true, video };
  const call = pv.call = pv.session.createCall({
    callee: $('callee').value.trim(), localVideoDisplay: $('local'), remoteVideoDisplay: $('remote'),
    constraints: pv.constraints, receiveAudio: true, receiveVideo: true,
    videoCodec: $('videoCodec').value || undefined,
  });
  for (const st of Object.values(CALL_STATUS)) {
    call.on(st, c => {
      show('call', st, c.cause());
      buttons();
      if (st === CALL_STATUS.ESTABLISHED && !statsTimer) statsTimer = setInterval(readStats, 1000);
      if ([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(st)) { clearInterval(statsTimer); statsTimer = null; }
    });
  }
  call.call();
  buttons();
};
$('hangup').onclick = () => pv.call && pv.call.hangup();

function readStats() {
  if (!pv.call) return;
  pv.call.getStats(s => {
    pv.lastStats = s;
    const o = s.outboundStream.videoStats || {}, i = s.inboundStream.videoStats || {};
    const v = $('remote').querySelector('video');
    $('stats').textContent = `video sent: ${o.packetsSent ?? 0} packets, ${o.framesEncoded ?? 0} frames\n` +
      `video received: ${i.packetsReceived ?? 0} packets, ${i.framesDecoded ?? 0} frames decoded, lost ${i.packetsLost ?? 0}` +
      (v ? `, showing ${v.videoWidth}x${v.videoHeight}` : '');
  });
}
buttons();
