#!/usr/bin/env bash
# Runs one browser page test (a node script here) against the real `wavegate` debug binaries
# inside a loopback-only network namespace: checks every prerequisite first and names the
# package that provides a missing one, then re-executes itself under `unshare -n` (`-rn` when
# not root), brings up `lo`, refuses any other link, and runs the script under a hard timeout.
# The per-test wrappers (phone.sh, phone-video.sh, sip.sh, firefox.sh) say what each one checks.
#
# usage: tests/browser/page-test.sh LABEL SCRIPT.mjs TIMEOUT_S NPM_PACKAGE EXECUTABLE...
#   NPM_PACKAGE: the browser driver that `npm ci` here installs (playwright-core, puppeteer-core)
#   EXECUTABLE: the browser and the SIP peers the script starts (absolute paths)
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 4 ] || { echo "usage: $0 LABEL SCRIPT.mjs TIMEOUT_S NPM_PACKAGE EXECUTABLE..." >&2; exit 2; }
label=$1 script=$2 seconds=$3 driver=$4
shift 4

die() { echo "$label test: FAILED: $*" >&2; exit 1; }

if [ -z "${WAVEGATE_IN_NETNS:-}" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  case "$target" in /*) ;; *) target=$root/$target ;; esac
  bin=${WAVEGATE_BIN_DIR:-$target/debug}
  command -v node >/dev/null || die "node not found (scripts/deps.sh test installs it)"
  for t in "$@"; do
    [ -x "$t" ] || die "$t not found (scripts/deps.sh test installs it: chromium, firefox-esr, kamailio, baresip-core, sip-tester)"
  done
  [ -x "$bin/wavegate" ] || die "$bin/wavegate not built (cargo build --workspace --all-targets)"
  [ -x "$bin/wavegate-mediaplane" ] || die "$bin/wavegate-mediaplane not built (cargo build --workspace --all-targets)"
  [ -f "$here/node_modules/$driver/package.json" ] || die "$driver not installed (cd tests/browser && npm ci)"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  command -v ip >/dev/null || die "ip not found (iproute2)"
  export WAVEGATE_IN_NETNS=1 WAVEGATE_BIN_DIR=$bin
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  "${ns[@]}" true 2>/dev/null || die "cannot create a network namespace with: ${ns[*]}"
  exec "${ns[@]}" "$0" "$label" "$script" "$seconds" "$driver" "$@"
fi

ip link set lo up
links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || die "network namespace is not loopback-only: $links"
timeout -k 5 "$seconds" node "$here/$script" --wavegate "$WAVEGATE_BIN_DIR/wavegate" \
  || die "exit $? (see the FAILED line above)"
