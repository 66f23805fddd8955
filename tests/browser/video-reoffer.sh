#!/usr/bin/env bash
# Headless Chromium, the JS SDK and the real `wavegate`: an OUTGOING page video call (Chromium
# offers its default list, VP8 first, H.264 after) to a SIPp answering PCMU audio + H.264 video
# only is re-offered by the server ONCE (video narrowed to H.264, Opus capped at 8 kHz), the SDK
# answers it, and Chromium's H.264 then reaches the SIP side's video port as payload type 99
# (video-reoffer.mjs says how). Loopback-only network namespace as the other page tests; media
# ports 43400-43479, the SIP side's video socket on 43490/43491.
#
# usage: tests/browser/video-reoffer.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug); see page-test.sh
exec "$(dirname "$0")/page-test.sh" "video re-offer" video-reoffer.mjs 90 playwright-core /usr/bin/chromium /usr/bin/sipp
