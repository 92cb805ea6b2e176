#!/usr/bin/env bash
# Instructions per request, counted by callgrind: a figure that does not move with the
# machine's load (req/s on a shared VM moves by 30 % from one minute to the next).
#
#   bash benches/instructions.sh NAME=SERVER [NAME=SERVER...]
#
# e.g., after `cargo build --release --all-features --example axum_logout --example baseline_server`,
# the hand-written peer (one Redis GET per request), the same without revocation, and ours:
#
#   bash benches/instructions.sh \
#     peer=target/release/examples/baseline_server \
#     peer_norevocation="env -u REDIS_URL target/release/examples/baseline_server" \
#     ours=target/release/examples/axum_logout \
#     ours_memory="env -u REDIS_URL target/release/examples/axum_logout"
#
# Each SERVER follows the contract of examples/baseline_server.rs and axum_logout (BIND,
# JWT_SECRET, REDIS_URL, `listening on http://ADDR`, POST /login, GET /me). Each runs under
# `valgrind --tool=callgrind` beside a private redis-server on a free loopback port;
# wrk warms it up for $WARMUP, the counters are zeroed, wrk runs $DURATION of
# `GET /me` (1 thread, $CONNECTIONS connections) and the counters are dumped (a SERVER
# may start with `env VAR=VALUE`: valgrind follows the exec). Prints
#   IR name=... requests=... instructions=... per_request=...
# and, per crate (self cost, instructions per request), the largest differences from
# the first server. Valgrind hides SHA-NI, so SHA-256 counts as its portable code: it
# weighs more here than on the machine. Profiles stay in $OUT (callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
CONNECTIONS=${CONNECTIONS:-16}
OUT=${OUT:-target/callgrind}
[ $# -ge 1 ] || { sed -n '2,25p' "$0"; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate wrk redis-server curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool on PATH" >&2; exit 1; }
done
mkdir -p "$OUT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pids=()
stop() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop EXIT

measure() {
    local name=$1 server=$2
    local redis_port port work
    redis_port=$(free_port)
    port=$(free_port)
    work=$(mktemp -d)
    setsid redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --dir "$work" >"$work/redis.log" 2>&1 &
    pids+=($!)
    rm -f "$OUT/$name.out"*
    BIND=127.0.0.1:$port JWT_SECRET=instructions-bench-secret REDIS_URL=redis://127.0.0.1:$redis_port/ \
        RUST_LOG=warn setsid valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/$name.out" \
        $server >"$OUT/$name.log" 2>&1 &
    local server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 1 600); do grep -q "listening on" "$OUT/$name.log" && break; sleep 0.1; done
    grep -q "listening on" "$OUT/$name.log" || { echo "$name did not start: $OUT/$name.log" >&2; exit 1; }
    local token
    token=$(curl -sf -X POST "http://127.0.0.1:$port/login" -H 'content-type: application/json' \
        -d '{"username":"alice","password":"password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    local me=(-H "Authorization: Bearer $token" "http://127.0.0.1:$port/me")
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${me[@]}")" = 200 ] || { echo "$name: GET /me is not 200" >&2; exit 1; }
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${me[@]}" >/dev/null
    callgrind_control -z "$server_pid" >/dev/null
    local requests
    requests=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${me[@]}" | awk '/requests in/ {print $1}')
    callgrind_control -d "$server_pid" >/dev/null
    for _ in $(seq 1 100); do [ -s "$OUT/$name.out.1" ] && break; sleep 0.1; done
    stop
    local instructions
    instructions=$(awk '/^summary:/ {print $2}' "$OUT/$name.out.1")
    echo "$name $requests" >>"$OUT/requests"
    echo "IR name=$name requests=$requests instructions=$instructions per_request=$((instructions / requests))"
}

rm -f "$OUT/requests"
for arg in "$@"; do
    measure "${arg%%=*}" "${arg#*=}"
done

# Self cost per crate, per request, for every server measured.
python3 - "$OUT" <<'EOF'
import re, subprocess, sys
out = sys.argv[1]
runs = [line.split() for line in open(f"{out}/requests")]
def by_crate(name):
    text = subprocess.run(["callgrind_annotate", "--threshold=100", f"{out}/{name}.out.1"],
                          capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
    crates = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        cost, symbol = int(m.group(1).replace(",", "")), m.group(2)
        # The runtime's frames that hold everything (inlined callers) are not self cost.
        if cost >= 0.25 * total and "sha" not in symbol:
            continue
        if "libc.so" in symbol:
            crate = "libc " + ("malloc" if re.search(r"malloc|arena|free", symbol) else "memcpy" if "mem" in symbol else "other")
        else:
            symbol = symbol.split(":", 1)[1] if symbol.startswith(("???:", "./")) else symbol
            crate = re.split(r"::|\s|<", re.sub(r"^(<|&|\*|mut |dyn )+", "", symbol))[0]
            crate = "aws_lc" if crate.startswith("aws_lc") else crate
        crates[crate] = crates.get(crate, 0) + cost
    return crates
tables = [(name, int(n), by_crate(name)) for name, n in runs]
names = sorted(set().union(*(t for _, _, t in tables)),
               key=lambda c: -max(t.get(c, 0) / n for _, n, t in tables))[:25]
print("\ninstructions per request, self cost by crate")
widths = [max(12, len(name) + 2) for name, _, _ in tables]
print(f"{'':24}" + "".join(f"{name:>{w}}" for (name, _, _), w in zip(tables, widths)))
for crate in names:
    print(f"{crate[:24]:24}" + "".join(f"{t.get(crate, 0) / n:{w}.0f}" for (_, n, t), w in zip(tables, widths)))
EOF
