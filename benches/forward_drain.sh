#!/usr/bin/env bash
# Telemetry forwarding at its limit: a backlog of SENSORS x SECONDS samples already in the
# store (imported), drained by one [[forward]] destination with an unthrottled
# backfill_rate, until every sample is confirmed (PUBACK from Mosquitto; HTTP 204 from
# InfluxDB). Beside it, in the same run, the same points written straight to the same
# InfluxDB with curl (benches/gen_signals.py's line protocol): what the database itself
# takes, the ceiling forewarn's writes can approach.
#
#   benches/forward_drain.sh            # 200 sensors x 1 h = 720,000 samples
#   SENSORS=500 DURATION=3600 benches/forward_drain.sh
#
# Needs mosquitto, influxd (Debian's influxdb), curl, python3 with numpy.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SENSORS=${SENSORS:-200}
SECONDS_=${DURATION:-3600}
SAMPLES=$((SENSORS * SECONDS_))
BIN=${FOREWARN_BIN:-$ROOT/target/release/forewarn}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)

MQ=$(free_port); IN=$(free_port); HTTP=$(free_port); RPC=$(free_port)
mosquitto -p "$MQ" >/dev/null 2>&1 & PIDS+=($!)
cat >"$WORK/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$RPC"
[meta]
  dir = "$WORK/influx/meta"
[data]
  dir = "$WORK/influx/data"
  wal-dir = "$WORK/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$IN"
  log-enabled = false
EOF
influxd -config "$WORK/influxdb.conf" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:$IN/ping" >/dev/null && break; sleep 0.2; done
for db in plant direct; do curl -s -XPOST "http://127.0.0.1:$IN/query" --data-urlencode "q=CREATE DATABASE $db" >/dev/null; done

START=$(( $(date +%s) - SECONDS_ - 120 ))
log "generating $SENSORS sensors x $SECONDS_ s ($SAMPLES samples)"
python3 "$ROOT/benches/gen_signals.py" "$WORK/sig" --sensors "$SENSORS" --seconds "$SECONDS_" --start "$START" >/dev/null

config() { # name to format extra
    cat <<EOF
[agent]
id = "bench"
data_dir = "$WORK/data"
[storage]
max_disk = "2GiB"
[upstream]
broker = "mqtt://127.0.0.1:$MQ"
[http]
listen = "127.0.0.1:$HTTP"
[[forward]]
name = "$1"
to = "$2"
format = "$3"
batch = 5000
backfill_rate = 100000000
interval = "100ms"
$4
EOF
}

config mq "mqtt://127.0.0.1:$MQ" json "" >"$WORK/import.toml"
log "importing"
"$BIN" import --config "$WORK/import.toml" --csv "$WORK/sig/wide.csv" >/dev/null

# Runs the agent with one destination until it has confirmed every sample; prints
# "seconds cpu_seconds max_rss_kib".
drain() { # name to format extra
    config "$@" >"$WORK/$1.toml"
    local t0 t1 pid confirmed=0
    t0=$(now_ms)
    /usr/bin/time -f '%U %S %M' -o "$WORK/$1.time" "$BIN" --log warn run --config "$WORK/$1.toml" 2>"$WORK/$1.log" &
    pid=$!
    while [ "$confirmed" -lt "$SAMPLES" ]; do
        sleep 0.1
        confirmed=$(curl -s "http://127.0.0.1:$HTTP/healthz" | python3 -c "import json,sys
try: print(json.load(sys.stdin)['forward']['$1']['confirmed'])
except Exception: print(0)")
        if ! kill -0 "$pid" 2>/dev/null; then cat "$WORK/$1.log" >&2; exit 1; fi
    done
    t1=$(now_ms)
    # SIGTERM to the agent, not to /usr/bin/time (which would die without its report).
    pkill -TERM -P "$pid"; wait "$pid" || true
    read -r u s m <"$WORK/$1.time"
    awk -v ms=$((t1 - t0)) -v u="$u" -v s="$s" -v m="$m" 'BEGIN {printf "%.2f %.2f %d\n", ms / 1000, u + s, m}'
}

log "forewarn -> Mosquitto (json)"
read -r MQ_S MQ_CPU MQ_RSS < <(drain mq "mqtt://127.0.0.1:$MQ" json "max_inflight = 100")
log "forewarn -> InfluxDB (line protocol)"
read -r IN_S IN_CPU IN_RSS < <(drain influx "http://127.0.0.1:$IN" influx 'database = "plant"')
POINTS=$(curl -s "http://127.0.0.1:$IN/query?db=plant" --data-urlencode "q=SELECT count(value) FROM forewarn" | python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['series'][0]['values'][0][1])")

log "curl -> InfluxDB, the same points"
t0=$(now_ms)
for f in "$WORK"/sig/lp/*.lp; do
    curl -s -XPOST "http://127.0.0.1:$IN/write?db=direct&precision=s" --data-binary @"$f" >/dev/null
done
DIRECT_S=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN {printf "%.2f", ms / 1000}')

rate() { awk -v n="$SAMPLES" -v s="$1" 'BEGIN {printf "%.0f", n / s}'; }
cat <<EOF
$SENSORS sensors x $SECONDS_ s = $SAMPLES samples, drained from the store (start-up included)
forewarn -> Mosquitto, JSON, QoS 1:    ${MQ_S} s  $(rate "$MQ_S") samples/s  CPU ${MQ_CPU} s  max RSS ${MQ_RSS} KiB
forewarn -> InfluxDB, line protocol:   ${IN_S} s  $(rate "$IN_S") samples/s  CPU ${IN_CPU} s  max RSS ${IN_RSS} KiB  ($POINTS points stored)
curl -> InfluxDB, the same points:     ${DIRECT_S} s  $(rate "$DIRECT_S") samples/s
EOF
