#!/usr/bin/env bash
# Headless Chromium drives the Phone Video page of the real `wavegate` server (which spawns the media
# plane) through the JS SDK and the WebSocket API, a video call to the built-in `echo` extension; all
# inside a loopback-only network namespace, as run.sh does. Needs the debug binaries (wavegate,
# wavegate-mediaplane) and `npm ci` done here beforehand (scripts/test.sh does both).
#
# usage: tests/browser/phone-video.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "phone-video test: FAILED: $*" >&2; exit 1; }

if [ -z "${WAVEGATE_IN_NETNS:-}" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  case "$target" in /*) ;; *) target=$root/$target ;; esac
  bin=${WAVEGATE_BIN_DIR:-$target/debug}
  command -v node >/dev/null || die "node not found (scripts/deps.sh test installs it)"
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium not found (scripts/deps.sh test installs chromium)"
  [ -x "$bin/wavegate" ] || die "$bin/wavegate not built (cargo build --workspace --all-targets)"
  [ -x "$bin/wavegate-mediaplane" ] || die "$bin/wavegate-mediaplane not built (cargo build --workspace --all-targets)"
  [ -f "$here/node_modules/playwright-core/package.json" ] || die "playwright-core not installed (cd tests/browser && npm ci)"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  command -v ip >/dev/null || die "ip not found (iproute2)"
  export WAVEGATE_IN_NETNS=1 WAVEGATE_BIN_DIR=$bin
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  "${ns[@]}" true 2>/dev/null || die "cannot create a network namespace with: ${ns[*]}"
  exec "${ns[@]}" "$0" "$@"
fi

ip link set lo up
links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || die "network namespace is not loopback-only: $links"
timeout -k 5 70 node "$here/phone-video.mjs" --wavegate "$WAVEGATE_BIN_DIR/wavegate" \
  || die "exit $? (see the FAILED line above)"
