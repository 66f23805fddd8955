#!/usr/bin/env bash
# Headless Chromium drives the Phone page of the real `wavegate` server against real SIP peers:
# Kamailio (registrar + proxy), baresip and SIPp (sip.mjs says what is checked); all inside a
# loopback-only network namespace, as run.sh does. Needs the debug binaries (wavegate,
# wavegate-mediaplane) and `npm ci` done here beforehand (scripts/test.sh does both).
#
# usage: tests/browser/sip.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug); see page-test.sh
exec "$(dirname "$0")/page-test.sh" "sip page" sip.mjs 170 playwright-core /usr/bin/chromium /usr/sbin/kamailio /usr/bin/baresip /usr/bin/sipp
