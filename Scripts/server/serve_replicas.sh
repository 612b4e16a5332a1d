#!/usr/bin/env bash
# make serve-replicas: two orochi-server replicas and nginx (Scripts/server/nginx/orochi.conf) on
# loopback; load through nginx (Scripts/server/load.py); one replica stopped mid-run. Exits 1 unless
# every request started after the stop succeeded. docs/serving.md gives a run's results.
#
# Environment: SERVER (the binary), MODEL (a model directory), PYTHON (with the openai package),
# OUT (folder for logs and the JSON report), DURATION (seconds of load), STOP_AT (seconds into it),
# SIGNAL (TERM: the replica drains; KILL: it dies), CONCURRENCY, MAX_TOKENS, THREADS (per replica).
set -euo pipefail

SERVER=${SERVER:-.build/release/orochi-server}
MODEL=${MODEL:-Models/orochi-ja-llama}
PYTHON=${PYTHON:-build/server-venv/bin/python}
OUT=${OUT:-build/serve-replicas}
DURATION=${DURATION:-60}
STOP_AT=${STOP_AT:-20}
SIGNAL=${SIGNAL:-TERM}
CONCURRENCY=${CONCURRENCY:-8}
MAX_TOKENS=${MAX_TOKENS:-64}
THREADS=${THREADS:-1}

mkdir -p "$OUT"; rm -f "$OUT"/*.log
OUT=$(cd "$OUT" && pwd)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT_A=$(free_port); PORT_B=$(free_port); PORT_LB=$(free_port)

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$SERVER" --model "$MODEL" --port "$PORT_A" --threads "$THREADS" > "$OUT/replica-a.log" 2>&1 & PID_A=$!; pids+=("$PID_A")
"$SERVER" --model "$MODEL" --port "$PORT_B" --threads "$THREADS" > "$OUT/replica-b.log" 2>&1 & PID_B=$!; pids+=("$PID_B")

# nginx: a main configuration of its own (foreground, files under $OUT) around the shipped snippet.
sed -e "s/@REPLICA_A@/127.0.0.1:$PORT_A/" -e "s/@REPLICA_B@/127.0.0.1:$PORT_B/" -e "s/@LISTEN@/127.0.0.1:$PORT_LB/" \
    Scripts/server/nginx/orochi.conf > "$OUT/orochi.conf"
cat > "$OUT/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log $OUT/nginx-access.log;
    client_body_temp_path $OUT/tmp/body;
    proxy_temp_path $OUT/tmp/proxy;
    fastcgi_temp_path $OUT/tmp/fastcgi;
    uwsgi_temp_path $OUT/tmp/uwsgi;
    scgi_temp_path $OUT/tmp/scgi;
    include $OUT/orochi.conf;
}
EOF
mkdir -p "$OUT/tmp"
nginx -t -p "$OUT" -c "$OUT/nginx.conf" 2>&1 | grep -v 'successful' || true
nginx -p "$OUT" -c "$OUT/nginx.conf" & PID_LB=$!; pids+=("$PID_LB")

wait_health() {
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$1/health" > /dev/null && return 0
        sleep 0.5
    done
    echo "serve-replicas: nothing answers on 127.0.0.1:$1 (logs in $OUT)" >&2; return 1
}
wait_health "$PORT_A"; wait_health "$PORT_B"; wait_health "$PORT_LB"
echo "replicas: a = 127.0.0.1:$PORT_A (pid $PID_A), b = 127.0.0.1:$PORT_B (pid $PID_B); nginx on 127.0.0.1:$PORT_LB"
echo "load through nginx: $CONCURRENCY streams for $DURATION s; SIG$SIGNAL to replica a at $STOP_AT s"

status=0
"$PYTHON" Scripts/server/load.py --base-url "http://127.0.0.1:$PORT_LB" --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --max-tokens "$MAX_TOKENS" --stop-pid "$PID_A" --stop-at "$STOP_AT" \
    --stop-signal "$SIGNAL" --upstream-of-stopped "127.0.0.1:$PORT_A" --expect-later-ok \
    --server-pid "$PID_B" --warmup "$STOP_AT" --json "$OUT/report-$SIGNAL.json" || status=$?

echo "replica a's exit: $(wait "$PID_A" 2>/dev/null; echo "status $?")"
echo "nginx's view of the stop (error log):"
grep -E 'upstream|no live' "$OUT/nginx-error.log" | sed -E 's/^[0-9\/: ]+//' | cut -c1-160 | sort | uniq -c | sort -rn | head -5 || true
awk '{print $9}' "$OUT/nginx-access.log" | sort | uniq -c | sed 's/^/  status /' || true
exit $status
