#!/usr/bin/env bash
# Headless Chromium <-> media plane <-> RTP echo peer, inside a network namespace that has only
# loopback (the browser cannot reach anything else even if a flag is missed). Needs the debug
# binaries (wavegate-mediaplane and the webrtc_echo_harness example) and `npm ci` done here
# beforehand (scripts/test.sh does both; the install must happen before entering the namespace).
#
# usage: tests/browser/run.sh          the default variants: opus pcmu-prefer opus-in vp8 h264
#        tests/browser/run.sh VARIANT...  opus pcmu opus-in pcmu-in pcmu-prefer (see run.mjs)
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "chromium test: FAILED: $*" >&2; exit 1; }

if [ -z "${WAVEGATE_IN_NETNS:-}" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  case "$target" in /*) ;; *) target=$root/$target ;; esac
  bin=${WAVEGATE_BIN_DIR:-$target/debug}
  command -v node >/dev/null || die "node not found (scripts/deps.sh test installs it)"
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium not found (scripts/deps.sh test installs chromium)"
  [ -x "$bin/wavegate-mediaplane" ] || die "$bin/wavegate-mediaplane not built (cargo build --workspace --all-targets)"
  [ -x "$bin/examples/webrtc_echo_harness" ] || die "$bin/examples/webrtc_echo_harness not built (cargo build --workspace --all-targets)"
  [ -f "$here/node_modules/playwright-core/package.json" ] || die "playwright-core not installed (cd tests/browser && npm ci)"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  command -v ip >/dev/null || die "ip not found (iproute2)"
  export WAVEGATE_IN_NETNS=1 WAVEGATE_BIN_DIR=$bin
  # A new network namespace needs CAP_SYS_ADMIN: root gets one directly, others through a user
  # namespace (-r).
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  "${ns[@]}" true 2>/dev/null || die "cannot create a network namespace with: ${ns[*]}"
  exec "${ns[@]}" "$0" "$@"
fi

# Inside the namespace: only lo, brought up; anything else means the isolation failed.
ip link set lo up
links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || die "network namespace is not loopback-only: $links"
bin=$WAVEGATE_BIN_DIR
[ $# -gt 0 ] || set -- opus pcmu-prefer opus-in vp8 h264
# Variants are defined in run.mjs; it stops at the first failure. 35 s per variant at most.
timeout -k 5 $((35 * $#)) node "$here/run.mjs" --harness "$bin/examples/webrtc_echo_harness" \
  --mediaplane "$bin/wavegate-mediaplane" "$@" || die "exit $? (see the FAILED line above)"
