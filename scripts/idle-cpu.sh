#!/usr/bin/env bash
# Starts the whole server with no calls and checks it uses under 1% of one core over 10 s
# (signalling + media plane together, from /proc). Usage: scripts/idle-cpu.sh [BIN_DIR]
set -euo pipefail
bin="${1:-target/release}"
port="${IDLE_HTTP_PORT:-18090}"
seconds="${IDLE_SECONDS:-10}"
limit_pct="${IDLE_LIMIT_PCT:-1.0}"
log="$(mktemp)"
WAVEGATE_HTTP__LISTEN="127.0.0.1:$port" WAVEGATE_MEDIA__RTP_PORTS="45000-45999" \
  "$bin/wavegate" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT

python3 - "$server" "$port" "$seconds" "$limit_pct" <<'PY'
import json, os, sys, time, urllib.request
server, port, seconds, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
deadline = time.time() + 20
while True:
    try:
        h = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1))
        if h["status"] == "ok":
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit("idle-cpu: server did not become healthy within 20 s")
    time.sleep(0.2)
child = h["mediaplane"]["pid"]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick   # utime + stime
time.sleep(1)  # let start-up work settle
t0, a0, b0 = time.monotonic(), cpu(server), cpu(child)
time.sleep(seconds)
t1, a1, b1 = time.monotonic(), cpu(server), cpu(child)
wall = t1 - t0
sig, mp = 100 * (a1 - a0) / wall, 100 * (b1 - b0) / wall
total = sig + mp
print(f"idle-cpu: {wall:.1f} s idle: signalling {sig:.2f}%, media plane {mp:.2f}% "
      f"({h['mediaplane']['shards'].__len__()} shards), total {total:.2f}% of one core (limit {limit}%)")
sys.exit(0 if total < limit else 1)
PY
