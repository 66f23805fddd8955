// The Phone page: the SDK's seed-style API behind a few buttons. State for tests and the
// console: window.phone = {session, call, log}.
import { createSession, getMediaDevices, SESSION_STATUS, CALL_STATUS, MEDIA_DEVICE_KIND } from '/sdk/wavegate.js';

const $ = id => document.getElementById(id);
const phone = window.phone = { session: null, call: null, log: [] };
let statsTimer = null;

function log(line) {
  const l = `${new Date().toISOString().slice(11, 23)} ${line}`;
  phone.log.push(l);
  $('log').textContent = phone.log.slice(-30).join('\n');
}
function show(which, status, cause) {
  $(`${which}Status`).textContent = status;
  $(`${which}Status`).className = 'status ' + (['FAILED', 'BUSY', 'DISCONNECTED'].includes(status) ? 'bad' : 'ok');
  $(`${which}Cause`).textContent = cause ? `(${cause})` : '';
  log(`${which} ${status}${cause ? ` (${cause})` : ''}`);
}
function buttons() {
  const s = phone.session && phone.session.status();
  const connected = s === SESSION_STATUS.ESTABLISHED || s === SESSION_STATUS.REGISTERED;
  const c = phone.call && phone.call.status();
  const live = !!c && ![CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(c);
  $('connect').disabled = !!phone.session && s !== SESSION_STATUS.FAILED && s !== SESSION_STATUS.DISCONNECTED;
  $('disconnect').disabled = !phone.session || !$('connect').disabled;
  $('call').disabled = !connected || live;
  $('hangup').disabled = !live;
  $('answer').disabled = !(phone.call && phone.call.isIncoming() && c === CALL_STATUS.RING && !phone.call.peerConnection());
  $('hold').disabled = c !== CALL_STATUS.ESTABLISHED;
  $('unhold').disabled = c !== CALL_STATUS.HOLD;
  $('mute').disabled = !live;
  const up = c === CALL_STATUS.ESTABLISHED || c === CALL_STATUS.HOLD;
  for (const b of ['transfer', 'sendMessage', 'switchMic', 'switchCam', 'setSpeaker']) $(b).disabled = !up;
  for (const b of $('keypad').children) b.disabled = !live;
}

$('connect').onclick = () => {
  const v = id => $(id).value.trim();
  const sipOptions = {
    login: v('login'), authenticationName: v('authName'), password: $('password').value,
    domain: v('domain'), outboundProxy: v('outboundProxy'), port: v('port'), transport: v('transport'),
    registerRequired: $('registerRequired').checked, visibleName: v('visibleName'),
  };
  show('session', 'PENDING', 'Connecting');
  try {
    phone.session = createSession({ urlServer: location.origin, sipOptions, appKey: v('appKey'),
      startCallOptions: { remoteVideoDisplay: $('remote'), constraints: { audio: true, video: false } } });
  } catch (e) {
    show('session', 'FAILED', e.message);
    return;
  }
  for (const st of Object.values(SESSION_STATUS)) {
    phone.session.on(st, s => { show('session', st, s.cause()); buttons(); });
  }
  phone.session.on('error', e => log(`server error: ${e.reason}`));
  phone.session.on(SESSION_STATUS.INCOMING_CALL, call => {
    phone.call = call;
    watchCall(call);
    show('call', 'RING', `Incoming call from ${call.caller()}`);
    buttons();
  });
  // A call the REST API started for this session (call/startup with its sessionId): the SDK
  // places it right after this handler; the page shows it like its own.
  phone.session.on('START_CALL', call => {
    phone.call = call;
    watchCall(call);
    log(`REST started a call to ${call.callee()}`);
    buttons();
  });
  buttons();
};
$('disconnect').onclick = () => { if (phone.session) phone.session.disconnect(); };

$('call').onclick = () => {
  $('dtmfHeard').textContent = '';
  const call = phone.call = phone.session.createCall({
    callee: $('callee').value.trim(), visibleName: $('visibleName').value.trim(),
    remoteVideoDisplay: $('remote'), constraints: { audio: true, video: false },
    receiveAudio: true, receiveVideo: false,
  });
  watchCall(call);
  call.call();
  buttons();
};
function watchCall(call) {
  for (const st of Object.values(CALL_STATUS)) {
    call.on(st, c => {
      show('call', st, c.cause());
      buttons();
      if (st === CALL_STATUS.ESTABLISHED && !statsTimer) statsTimer = setInterval(readStats, 1000);
      if ([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(st)) { clearInterval(statsTimer); statsTimer = null; }
    });
  }
  call.on('DTMF', d => { $('dtmfHeard').textContent += d.digit; log(`DTMF ${d.digit} (${d.type})`); });
  call.on('MESSAGE', m => { $('messages').textContent += `[${m.text}] `; log(`message: ${m.text}`); });
  call.on('TRANSFER', t => { $('transferStatus').textContent = `${t.status} (${t.code})`; log(t.cause); });
}
$('answer').onclick = () => { if (phone.call) { phone.call.answer({ remoteVideoDisplay: $('remote') }); buttons(); } };
$('hangup').onclick = () => phone.call && phone.call.hangup();
$('hold').onclick = () => phone.call && phone.call.hold();
$('unhold').onclick = () => phone.call && phone.call.unhold();
$('mute').onclick = () => {
  if (!phone.call) return;
  if (phone.call.isAudioMuted()) { phone.call.unmuteAudio(); $('mute').textContent = 'Mute'; }
  else { phone.call.muteAudio(); $('mute').textContent = 'Unmute'; }
};
for (const d of '123A456B789C*0#D') {
  const b = document.createElement('button');
  b.textContent = d; b.dataset.digit = d; b.disabled = true;
  b.onclick = () => { try { phone.call.sendDTMF(d, $('dtmfType').value); } catch (e) { log(e.message); } };
  $('keypad').appendChild(b);
}

// Transfer, messages, devices: errors from the SDK (WavegateError) go to the device/log lines.
const guard = (what, fn) => async () => {
  try { await fn(); } catch (e) { log(`${what}: ${e.message}`); $('deviceStatus').textContent = `${what}: ${e.message}`; }
};
$('transfer').onclick = guard('transfer', () => phone.call.transfer($('transferTarget').value.trim()));
$('sendMessage').onclick = guard('sendMessage', () => phone.call.sendMessage($('messageText').value));
async function listDevices() {
  const devices = phone.devices = await getMediaDevices(null, true, MEDIA_DEVICE_KIND.ALL);
  for (const [type, list] of [['mic', 'micList'], ['camera', 'camList'], ['speaker', 'speakerList']]) {
    $(list).replaceChildren(...devices.filter(d => d.type === type).map(d => {
      const o = document.createElement('option'); o.value = d.id; o.textContent = d.label || d.id; return o;
    }));
  }
  $('deviceStatus').textContent = `${devices.length} devices`;
  return devices;
}
$('listDevices').onclick = guard('devices', listDevices);
$('switchMic').onclick = guard('switchMic', async () => {
  const id = await phone.call.switchMic($('micList').value || undefined);
  $('deviceStatus').textContent = `microphone ${id}`;
});
$('switchCam').onclick = guard('switchCam', async () => {
  const id = await phone.call.switchCam($('camList').value || undefined);
  $('deviceStatus').textContent = `camera ${id}`;
});
$('setSpeaker').onclick = guard('setAudioOutputId', async () => {
  await phone.call.setAudioOutputId($('speakerList').value);
  $('deviceStatus').textContent = `speaker ${$('speakerList').value}`;
});

function readStats() {
  if (!phone.call) return;
  phone.call.getStats(s => {
    const o = s.outboundStream.audioStats || {}, i = s.inboundStream.audioStats || {};
    phone.lastStats = s;
    $('stats').textContent = `sent: ${o.packetsSent ?? 0} packets, ${o.bytesSent ?? 0} bytes\n` +
      `received: ${i.packetsReceived ?? 0} packets, ${i.bytesReceived ?? 0} bytes, lost ${i.packetsLost ?? 0}, ` +
      `jitter ${i.jitter ?? 0} s, level ${i.audioLevel ?? 0}`;
  });
}
buttons();
