#!/usr/bin/env bash
# Headless Chromium drives the Phone Video page of the real `wavegate` server (which spawns the media
# plane) through the JS SDK and the WebSocket API, a video call to the built-in `echo` extension; all
# inside a loopback-only network namespace, as run.sh does. Needs the debug binaries (wavegate,
# wavegate-mediaplane) and `npm ci` done here beforehand (scripts/test.sh does both).
#
# usage: tests/browser/phone-video.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug); see page-test.sh
exec "$(dirname "$0")/page-test.sh" "phone-video" phone-video.mjs 70 playwright-core /usr/bin/chromium
