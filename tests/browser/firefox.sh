#!/usr/bin/env bash
# Headless Firefox ESR (puppeteer-core over WebDriver BiDi) drives the Phone page of the real
# `wavegate` server: a call to echo, and through Kamailio to baresip (firefox.mjs says what is
# checked); all inside a loopback-only network namespace, as run.sh does. Needs the debug
# binaries (wavegate, wavegate-mediaplane) and `npm ci` done here beforehand (scripts/test.sh).
#
# usage: tests/browser/firefox.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug); see page-test.sh
exec "$(dirname "$0")/page-test.sh" "firefox" firefox.mjs 125 puppeteer-core /usr/lib/firefox-esr/firefox-esr /usr/sbin/kamailio /usr/bin/baresip /usr/bin/sipp
