// Firefox ESR prefs for the browser tests (firefox.mjs), adapted from the feasibility notes in
// /work/shared/peers/firefox: fake devices counted as capturing (else no loopback ICE candidates),
// loopback ICE, autoplay allowed, and every background service off or pointed at a dead local port.
const DEAD = 'http://127.0.0.1:9/'; // discard port: nothing listens, connection refused
export const mediaPrefs = {
  // --- WebRTC / media ---
  'media.navigator.streams.fake': true,            // fake camera + mic (synthetic frames / tone)
  'media.navigator.permission.disabled': true,     // no getUserMedia prompt
  // KEY: count fake devices as active capture. Otherwise Firefox uses default-route-only ICE
  // (IsActivelyCapturingOrHasAPermission is false) and never gathers 127.0.0.1 candidates.
  'media.navigator.permission.fake': true,
  'media.peerconnection.ice.loopback': true,       // allow 127.0.0.1 host candidates
  'media.peerconnection.ice.force_interface': 'lo',// gather only on loopback (VM also has eth0)
  'media.peerconnection.ice.obfuscate_host_addresses': false, // no mDNS .local candidates
  'media.peerconnection.ice.default_address_only': false,
  'media.peerconnection.ice.no_host': false,
  'media.peerconnection.ice.proxy_only_if_behind_proxy': false,
  'media.peerconnection.default_iceservers': '[]', // no default STUN
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
};
export const quietPrefs = {
  // --- stop background network traffic ---
  'app.update.auto': false,
  'app.update.enabled': false,
  'app.update.url': DEAD,
  'app.normandy.enabled': false,
  'app.shield.optoutstudies.enabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': DEAD,
  'toolkit.telemetry.archive.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.healthreport.documentServerURI': DEAD,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.trr.mode': 5,                           // DoH off
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.predictor.enabled': false,
  'network.http.speculative-parallel-limit': 0,
  'network.sntp.pools': '127.0.0.1',
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.google.updateURL': '',
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'services.settings.server': DEAD,                // remote settings
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.search.geoip.url': '',
  'browser.search.update': false,
  'browser.newtabpage.enabled': false,
  'browser.newtabpage.activity-stream.feeds.system.topstories': false,
  'browser.newtabpage.activity-stream.feeds.snippets': false,
  'browser.newtabpage.activity-stream.telemetry': false,
  'browser.discovery.enabled': false,
  'browser.ping-centre.telemetry': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'media.gmp-manager.url': DEAD,
  'media.gmp-gmpopenh264.autoupdate': false,
  'security.OCSP.enabled': 0,
  'security.remote_settings.crlite_filters.enabled': false,
  'security.remote_settings.intermediates.enabled': false,
  'geo.provider.network.url': '',
  'identity.fxaccounts.enabled': false,
  'messaging-system.rsexperimentloader.enabled': false,
  'privacy.query_stripping.enabled': false,
  'browser.contentblocking.report.lockwise.enabled': false,
  // Belt and braces: every proxied (non-localhost) HTTP(S) request goes to a dead local port.
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1', 'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1', 'network.proxy.ssl_port': 9,
  'network.proxy.share_proxy_settings': true,
  'network.proxy.no_proxies_on': '',               // localhost/127.0.0.1 are never proxied by default
  'network.proxy.allow_hijacking_localhost': false,
  'network.proxy.failover_direct': false,          // default true: would go direct when the dead proxy refuses
};
export const prefs = { ...mediaPrefs, ...quietPrefs };
