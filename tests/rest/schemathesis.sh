#!/usr/bin/env bash
# Schemathesis (pinned, installed by `scripts/deps.sh test` into target/schemathesis-venv) against
# the real `wavegate` binary's REST API, driven by the OpenAPI document the server serves at
# /rest-api/openapi.json: generated valid and invalid requests to every endpoint, API key on;
# fails on any 5xx, a status code or content type the document does not list, a response body
# that does not match its schema, an invalid request that is accepted, or an endpoint that
# answers without the key. Runs inside a loopback-only network namespace (as the browser
# tests), so server-side calls to generated callees reach nobody outside.
#
# usage: tests/rest/schemathesis.sh
# env:   WAVEGATE_BIN_DIR (default ${CARGO_TARGET_DIR:-target}/debug), ST_MAX_EXAMPLES (default 40)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "schemathesis test: FAILED: $*" >&2; exit 1; }

if [ -z "${WAVEGATE_IN_NETNS:-}" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  case "$target" in /*) ;; *) target=$root/$target ;; esac
  bin=${WAVEGATE_BIN_DIR:-$target/debug}
  st=${ST_BIN:-$root/target/schemathesis-venv/bin/st}
  [ -x "$st" ] || die "$st missing (scripts/deps.sh test installs schemathesis)"
  [ -x "$bin/wavegate" ] || die "$bin/wavegate not built (cargo build --workspace --all-targets)"
  [ -x "$bin/wavegate-mediaplane" ] || die "$bin/wavegate-mediaplane not built"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  export WAVEGATE_IN_NETNS=1 WAVEGATE_BIN_DIR=$bin ST_BIN=$st
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  "${ns[@]}" true 2>/dev/null || die "cannot create a network namespace with: ${ns[*]}"
  exec "${ns[@]}" "$0" "$@"
fi

ip link set lo up
work=$(mktemp -d /tmp/wavegate-schemathesis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
webrtc=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=schemathesis-key
# (the wrapper's own WAVEGATE_* variables are not configuration: keep them from the server)
env -u WAVEGATE_IN_NETNS -u WAVEGATE_BIN_DIR \
  WAVEGATE_HTTP__LISTEN=127.0.0.1:$port WAVEGATE_MEDIA__SHARDS=1 WAVEGATE_MEDIA__PIN=false \
  WAVEGATE_MEDIA__RTP_PORTS=46600-46699 WAVEGATE_MEDIA__WEBRTC_PORT_BASE=$webrtc \
  WAVEGATE_REST__AUTH=on WAVEGATE_REST__API_KEY=$key WAVEGATE_LOG__LEVEL=warn \
  "$WAVEGATE_BIN_DIR/wavegate" > "$work/wavegate.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
ok=
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then ok=1; break; fi
  kill -0 $server 2>/dev/null || die "wavegate exited: $(tail -5 "$work/wavegate.log")"
  sleep 0.1
done
[ -n "$ok" ] || die "wavegate not healthy within 10 s: $(tail -5 "$work/wavegate.log")"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth
cd "$work"  # schemathesis and hypothesis keep their caches in the working directory
set +e
timeout -k 5 300 "$ST_BIN" run "http://127.0.0.1:$port/rest-api/openapi.json" \
  --url "http://127.0.0.1:$port" -H "X-Api-Key: $key" --checks "$checks" \
  --max-examples "${ST_MAX_EXAMPLES:-40}" --seed 1 --no-color --report-dir "$work/report" 2>&1 | tee "$work/st.out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
  echo "--- server log (tail):"; tail -30 "$work/wavegate.log"
  die "schemathesis exit $rc (output above; files in $work)"
fi
grep -q " 5[0-9][0-9] " "$work/wavegate.log" && die "the server logged a 5xx"
echo "schemathesis test: passed ($work)"
