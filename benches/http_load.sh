#!/usr/bin/env bash
# HTTP load: GET /me with a valid HS256 token, driven by wrk, against
#   baseline  examples/baseline_server: axum + jsonwebtoken in a middleware, no revocation
#   baseline_redis  the same + a hand-written check: one Redis GET per request
#   memory    examples/axum_logout on the in-memory store
#   redis     examples/axum_logout on Redis (REDIS_URL; one MGET per request)
#   mirror    examples/axum_logout on Redis with a local mirror (REVOCATION_MIRROR=1)
# in one run, each on a fresh server process. Everything listens on 127.0.0.1 only; every
# process the script starts is stopped on exit (trap).
#
# The server is pinned to CPU $SERVER_CPU (default 0) with taskset, wrk (1 thread,
# $CONNECTIONS connections, default 64) to CPU $CLIENT_CPU (default 1), and the private
# redis-server (on a free port, in a temp dir) to $REDIS_CPU (default: the client's), so the
# server has one core to itself in every mode.
#
#   bash benches/http_load.sh                     # all four modes, 10 s each
#   DURATION=30s MODES="baseline mirror" bash benches/http_load.sh
#
# Writes benches/results/http_load.tsv (mode, req/s, p50 ms, p99 ms, requests, non-2xx,
# GET + MGET commands Redis served during the run) and, when python3 is there,
# BENCHMARKS.svg.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS_CPU=${REDIS_CPU:-$CLIENT_CPU}
MODES=${MODES:-baseline baseline_redis memory redis mirror}
OUT=${OUT:-benches/results/http_load.tsv}

for tool in wrk taskset curl redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "http_load: '$tool' is missing (apt-get install -y wrk redis-server curl util-linux)" >&2
        exit 1
    fi
done

echo "--- building the servers (release)"
cargo build --release --all-features --example axum_logout --example baseline_server
BIN=target/release/examples

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

# "123.45us" / "1.23ms" / "1.02s" -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

mkdir -p "$(dirname "$OUT")"
printf 'mode\treq_per_s\tp50_ms\tp99_ms\trequests\tnon_2xx\tredis_reads\n' >"$OUT"

run_mode() {
    local mode=$1 binary=$2
    shift 2
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
    token=$(curl -sf -X POST "http://127.0.0.1:$port/login" -H 'content-type: application/json' \
        -d '{"username":"alice","password":"password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/me" -H "authorization: Bearer $token")
    if [ "$status" != 200 ]; then
        echo "http_load: $mode answered $status to GET /me" >&2
        exit 1
    fi
    local url="http://127.0.0.1:$port/me"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -H "authorization: Bearer $token" "$url" >/dev/null
    local before after
    before=$(redis_reads)
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "authorization: Bearer $token" "$url" >"$TMP/$mode.wrk"
    after=$(redis_reads)
    kill "$pid"
    wait "$pid" 2>/dev/null || true

    echo "--- $mode"
    cat "$TMP/$mode.wrk"
    local rps p50 p99 requests non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/$mode.wrk")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$TMP/$mode.wrk")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$TMP/$mode.wrk")")
    requests=$(awk '/requests in/ {print $1}' "$TMP/$mode.wrk")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$TMP/$mode.wrk")
    non2xx=${non2xx:-0}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$rps" "$p50" "$p99" "$requests" "$non2xx" \
        "$((after - before))" >>"$OUT"
}

echo "--- load before the run: $(uptime)"
for mode in $MODES; do
    case $mode in
        baseline) run_mode baseline baseline_server ;;
        baseline_redis) run_mode baseline_redis baseline_server REDIS_URL="$REDIS_URL" ;;
        memory) run_mode memory axum_logout ;;
        redis) run_mode redis axum_logout REDIS_URL="$REDIS_URL" ;;
        mirror) run_mode mirror axum_logout REDIS_URL="$REDIS_URL" REVOCATION_MIRROR=1 ;;
        *) echo "http_load: unknown mode $mode" >&2; exit 1 ;;
    esac
done
echo "--- load after the run: $(uptime)"

echo
echo "--- results ($OUT)"
column -t -s $'\t' "$OUT" 2>/dev/null || cat "$OUT"
if command -v python3 >/dev/null 2>&1; then
    python3 benches/chart.py "$OUT" BENCHMARKS.svg
fi
