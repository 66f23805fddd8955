#!/usr/bin/env bash
# Headless Chromium, the JS SDK and the real `wavegate`: an OUTGOING page call to a PCMU-only
# SIPp is re-offered by the server (Opus capped at 8 kHz) and Chromium then sends narrowband
# Opus; a call answered Opus is not re-offered and stays wider (opus-reoffer.mjs says how).
# Loopback-only network namespace as the other page tests; media ports 43000-43099.
#
# usage: tests/browser/opus-reoffer.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug); see page-test.sh
exec "$(dirname "$0")/page-test.sh" "opus re-offer" opus-reoffer.mjs 110 playwright-core /usr/bin/chromium /usr/bin/sipp
