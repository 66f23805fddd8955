#!/usr/bin/env bash
# Headless Chromium: does it send narrowband Opus (TOC bandwidth) when the Opus fmtp it answers
# carries the `maxplaybackrate`/`sprop-maxcapturerate` parameters the bridge writes toward the
# browser on narrowband transcoded calls? (opus-nb.mjs says how.) No Wavegate process is
# involved: the parameters are read from mediaplane/src/webrtc/bridge_sdp.rs.
#
# Isolation as the other browser tests (a new network namespace, nothing but what is made
# here), except that two Chromium peer connections gather no candidate on loopback alone, so
# the namespace also gets a veth pair whose both ends stay inside it (10.99.0.1/2): still no
# route out. Needs `npm ci` done here beforehand (scripts/test.sh does it).
#
# usage: tests/browser/opus-nb.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "opus narrowband test: FAILED: $*" >&2; exit 1; }

if [ -z "${WAVEGATE_IN_NETNS:-}" ]; then
  command -v node >/dev/null || die "node not found (scripts/deps.sh test installs it)"
  [ -x /usr/bin/chromium ] || die "/usr/bin/chromium not found (scripts/deps.sh test installs chromium)"
  [ -f "$here/node_modules/playwright-core/package.json" ] || die "playwright-core not installed (cd tests/browser && npm ci)"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  command -v ip >/dev/null || die "ip not found (iproute2)"
  export WAVEGATE_IN_NETNS=1
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  "${ns[@]}" true 2>/dev/null || die "cannot create a network namespace with: ${ns[*]}"
  exec "${ns[@]}" "$0" "$@"
fi

ip link set lo up
ip link add wgnb0 type veth peer name wgnb1 || die "cannot create a veth pair in the namespace"
ip addr add 10.99.0.1/24 dev wgnb0
ip addr add 10.99.0.2/24 dev wgnb1
ip link set wgnb0 up
ip link set wgnb1 up
# Chromium gathers host candidates only with a default route; it leads to the pair's other end.
ip route add default via 10.99.0.2 dev wgnb0
links=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
[ "$links" = "lo wgnb0 wgnb1 " ] || die "network namespace has unexpected links: $links"
timeout -k 5 60 node "$here/opus-nb.mjs" || die "exit $? (see the FAILED line above)"
