#!/usr/bin/env bash
# The side-by-side HTTP comparison: GET /me with a valid HS256 token, driven by wrk, against
#   baseline        examples/baseline_server: axum + jsonwebtoken in a hand-written
#                   middleware, no revocation (the ceiling)
#   baseline_redis  the same + the check one writes by hand: one Redis GET per request
#                   (and a POST /logout that SETs the key)
#   memory          examples/axum_logout on the in-memory store
#   redis           examples/axum_logout on Redis (REDIS_URL; one MGET per request)
#   mirror          examples/axum_logout on Redis with a local mirror (REVOCATION_MIRROR=1)
# each on a fresh server process, the modes alternating within each of $ROUNDS rounds, and
# prints a table: req/s and p99 per mode (median over the rounds), and each round's ratio
# of memory and mirror to `baseline`, of redis to `baseline_redis`, with their medians.
#
# Before its load, every server is checked: login, GET /me 200; for the modes that
# revoke, POST /logout 204 then GET /me with the same token 401 (a server that let a
# revoked token in would not be comparable); after the load, the load's token is still
# accepted (a run of 401s would look fast).
#
# Everything listens on 127.0.0.1 only; every process the script starts is stopped on exit
# (by pid). The server is pinned to CPU $SERVER_CPU (default 0) with taskset, wrk (1 thread,
# $CONNECTIONS connections, default 64) to CPU $CLIENT_CPU (default 1), and the private
# redis-server (on a free port, in a temp dir, no persistence) to $REDIS_CPU (default: the
# client's), so the server has one core to itself in every mode.
#
#   bash benches/http_load.sh                                   # 5 modes, 3 rounds, 10 s each
#   ROUNDS=1 DURATION=3s bash benches/http_load.sh              # a quick look
#   ROUNDS=5 MODES="baseline_redis redis" bash benches/http_load.sh   # A/B of two
#
# Needs wrk, redis-server, redis-cli, curl, taskset, python3
# (apt-get install -y wrk redis-server redis-tools curl util-linux python3).
#
# Writes $OUT (default benches/results/http_load.tsv: round, mode, req/s, p50 ms, p99 ms,
# requests, non-2xx, GET + MGET commands Redis served during the run, how busy the machine
# was in the second before the run). `CHART=1` also draws BENCHMARKS.svg from it
# (benches/chart.py).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS_CPU=${REDIS_CPU:-$CLIENT_CPU}
MODES=${MODES:-baseline baseline_redis memory redis mirror}
OUT=${OUT:-benches/results/http_load.tsv}

for tool in wrk taskset curl redis-server redis-cli python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "http_load: '$tool' is missing (apt-get install -y wrk redis-server redis-tools curl util-linux python3)" >&2
        exit 1
    fi
done

echo "--- building the servers (release)"
cargo build --release --all-features --example axum_logout --example baseline_server
BIN="${CARGO_TARGET_DIR:-target}/release/examples"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

REDIS_PORT=$(free_port)
taskset -c "$REDIS_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$TMP" --daemonize no --protected-mode yes --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

# How many GET and MGET commands Redis has served.
redis_reads() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_m\{0,1\}get:calls=\([0-9]*\),.*/\1/p' | awk '{ n += $1 } END { print n + 0 }'
}

# The whole machine's busy share over one second, in per cent: other processes' load
# makes every figure low and noisy.
busy_pct() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 2; i <= 9 && i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d", total ? 100 * (total - idle) / total : 0
    }'
}

# "123.45us" / "1.23ms" / "1.02s" -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

login() {
    curl -sf -X POST "http://127.0.0.1:$1/login" -H 'content-type: application/json' \
        -d '{"username":"alice","password":"password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}

status() {
    curl -s -o /dev/null -w '%{http_code}' "$@"
}

expect() { # expect MODE WHAT WANT GOT
    if [ "$3" != "$4" ]; then
        echo "http_load: $1: $2 answered $4, not $3" >&2
        exit 1
    fi
}

mkdir -p "$(dirname "$OUT")"
printf 'round\tmode\treq_per_s\tp50_ms\tp99_ms\trequests\tnon_2xx\tredis_reads\tbusy_before_pct\n' >"$OUT"

run_mode() {
    local round=$1 mode=$2 binary=$3
    shift 3
    local port log pid token
    port=$(free_port)
    log="$TMP/$mode.log"
    env -u REDIS_URL -u REVOCATION_MIRROR BIND="127.0.0.1:$port" "$@" taskset -c "$SERVER_CPU" "$BIN/$binary" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
        grep -q "listening on" "$log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.05
    done

    local url="http://127.0.0.1:$port/me"
    token=$(login "$port")
    expect "$mode" "GET /me" 200 "$(status "$url" -H "authorization: Bearer $token")"
    if [ "$mode" != baseline ]; then
        expect "$mode" "POST /logout" 204 \
            "$(status -X POST "http://127.0.0.1:$port/logout" -H "authorization: Bearer $token")"
        expect "$mode" "GET /me after logout" 401 "$(status "$url" -H "authorization: Bearer $token")"
    fi
    token=$(login "$port")

    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -H "authorization: Bearer $token" "$url" >/dev/null
    local busy before after
    busy=$(busy_pct)
    before=$(redis_reads)
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "authorization: Bearer $token" "$url" >"$TMP/$mode.wrk"
    after=$(redis_reads)
    expect "$mode" "GET /me after the load" 200 "$(status "$url" -H "authorization: Bearer $token")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true

    local rps p50 p99 requests non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/$mode.wrk")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$TMP/$mode.wrk")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$TMP/$mode.wrk")")
    requests=$(awk '/requests in/ {print $1}' "$TMP/$mode.wrk")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$TMP/$mode.wrk")
    non2xx=${non2xx:-0}
    printf '%-15s round %s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  non-2xx %s  Redis reads %s  (machine %s%% busy before)\n' \
        "$mode" "$round" "$rps" "$p50" "$p99" "$non2xx" "$((after - before))" "$busy"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$rps" "$p50" "$p99" "$requests" \
        "$non2xx" "$((after - before))" "$busy" >>"$OUT"
}

echo "--- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "--- load before the run: $(uptime)"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        case $mode in
            baseline) run_mode "$round" baseline baseline_server ;;
            baseline_redis) run_mode "$round" baseline_redis baseline_server REDIS_URL="$REDIS_URL" ;;
            memory) run_mode "$round" memory axum_logout ;;
            redis) run_mode "$round" redis axum_logout REDIS_URL="$REDIS_URL" ;;
            mirror) run_mode "$round" mirror axum_logout REDIS_URL="$REDIS_URL" REVOCATION_MIRROR=1 ;;
            *) echo "http_load: unknown mode $mode" >&2; exit 1 ;;
        esac
    done
done
echo "--- load after the run: $(uptime)"

echo
echo "--- $OUT: GET /me, HS256, wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS round(s); medians over the rounds"
python3 - "$OUT" <<'EOF'
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
modes = list(dict.fromkeys(r["mode"] for r in rows))
by = {(r["round"], r["mode"]): r for r in rows}
rounds = list(dict.fromkeys(r["round"] for r in rows))
# What each mode is measured against: the layer in memory or a mirror against no
# revocation at all, the layer on Redis against the hand-written Redis check.
against = {"memory": "baseline", "mirror": "baseline", "redis": "baseline_redis"}
print(f"{'mode':<15} {'req/s':>9} {'p99 ms':>7}  {'against':<15} {'req/s ratio per round':<28} {'median':>6}  {'p99 ratio':>9}")
for mode in modes:
    mine = [by[(n, mode)] for n in rounds if (n, mode) in by]
    rps = statistics.median(float(r["req_per_s"]) for r in mine)
    p99 = statistics.median(float(r["p99_ms"]) for r in mine)
    line = f"{mode:<15} {rps:>9.0f} {p99:>7.3f}"
    ref = against.get(mode)
    pairs = [(by[(n, mode)], by[(n, ref)]) for n in rounds if (n, mode) in by and (n, ref) in by]
    if pairs:
        ratios = [float(a["req_per_s"]) / float(b["req_per_s"]) for a, b in pairs]
        p99s = [float(a["p99_ms"]) / float(b["p99_ms"]) for a, b in pairs]
        each = " ".join(f"{x:.2f}" for x in ratios)
        line += f"  {ref:<15} {each:<28} {statistics.median(ratios):>5.2f}x  {statistics.median(p99s):>8.2f}x"
    print(line)
busy = [int(r["busy_before_pct"]) for r in rows]
if max(busy) > 10:
    print(f"(the machine was {min(busy)}-{max(busy)} % busy before the runs: other processes; figures low and noisy)")
EOF
if [ "${CHART:-0}" = 1 ]; then
    python3 benches/chart.py "$OUT" BENCHMARKS.svg
fi
