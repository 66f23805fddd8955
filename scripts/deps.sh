#!/usr/bin/env bash
# Installs the Debian packages Wavegate needs, only those missing, so repeated runs are quick.
#   scripts/deps.sh build   packages needed to build (C toolchain pieces for bundled codecs)
#   scripts/deps.sh test    build packages plus what the test suite starts or drives
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-build}"
# libclang-dev: bindgen in speex-sys (transcoding) generates its bindings at build time.
build_pkgs=(build-essential cmake pkg-config libclang-dev)
# kamailio: registrar/proxy; sip-tester: SIPp; baresip-core: a real softphone; chromium: the
# browser the SDK tests drive (through playwright-core from npm, never a downloaded browser);
# firefox-esr: the second engine (puppeteer-core over WebDriver BiDi, no downloaded browser);
# util-linux: unshare, for the loopback-only network namespace browsers run in.
# rtpengine-daemon: rtpengine 10.5 (binary `rtpengine`), the userspace relay the versus-rtpengine
# benchmark and its smoke compare our media plane with (installs don't start it; the test starts it).
# janus: Janus 1.1.2 with its SIP plugin, the gateway `loadtest versus-janus` compares against.
# python3-venv: the venv schemathesis (PyPI, pinned below) is installed into for the REST test.
test_pkgs=(iproute2 procps python3 python3-venv kamailio sip-tester baresip-core chromium firefox-esr util-linux
  rtpengine-daemon janus)
# Node.js runs Playwright; use the machine's own when there is one, else Debian's.
command -v node >/dev/null 2>&1 || test_pkgs+=(nodejs npm)
pkgs=("${build_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

# Schemathesis (property-based testing of the REST API against its OpenAPI document), pinned, in
# a venv under target/ so nothing touches the system Python. Only reinstalled when the pin changes.
install_schemathesis() {
  local version=4.32.5 venv="$here/../target/schemathesis-venv"
  if [ -x "$venv/bin/st" ] && [ "$(cat "$venv/.pinned" 2>/dev/null)" = "$version" ]; then
    echo "deps: schemathesis $version present"
    return
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
  echo "$version" > "$venv/.pinned"
  echo "deps: schemathesis $version installed in $venv"
}

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  [ "$mode" = test ] && install_schemathesis
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ "$mode" = test ] && install_schemathesis
exit 0
