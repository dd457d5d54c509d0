#!/usr/bin/env bash
# MQTT ingestion throughput, side by side with mosquitto_sub draining the same queue.
#
# A real Mosquitto on a free loopback port queues N small JSON messages for a persistent
# session; then the consumer connects and drains them. mosquitto_sub (which acknowledges
# at once and writes nothing) is the limit of this machine; forewarn acknowledges each
# QoS 1 message only after its samples are durable in the store (fsynced).
#   benches/mqtt_ingest.sh [N]        (default 200000 messages, 2 samples each)
# Environment: INFLIGHT (broker's max_inflight_messages, default 1000), ACK_DELAY (default 10ms).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
INFLIGHT=${INFLIGHT:-1000}
ACK_DELAY=${ACK_DELAY:-10ms}
cargo build --release -q
bin=$PWD/target/release/forewarn
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
user root
max_queued_messages 0
max_inflight_messages $INFLIGHT
CONF
"$mosq" -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
sleep 0.5

python3 - "$N" > "$work/payloads" <<'PY'
import sys
n = int(sys.argv[1])
t0 = 1_700_000_000_000
for i in range(n):
    print('{"ts": %d, "temp": %.2f, "vib": %.3f}' % (t0 + i, 20 + (i % 500) / 100, (i % 97) / 1000))
PY

publish() { # $1 = qos
  mosquitto_pub -p "$port" -q "$1" -t plant/line1/pump7/telemetry -l < "$work/payloads"
}

# ---- mosquitto_sub: the limit -------------------------------------------------------
sub_rate() { # $1 = qos
  mosquitto_sub -p "$port" -i "bench-sub-q$1" -c -q "$1" -t 'plant/+/+/telemetry' -E
  publish "$1"
  local start end
  start=$(date +%s.%N)
  mosquitto_sub -p "$port" -i "bench-sub-q$1" -c -q "$1" -t 'plant/+/+/telemetry' -C "$N" > /dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'{$N/($end-$start):.0f}')"
}

# ---- forewarn -----------------------------------------------------------------------
agent_rate() { # $1 = qos
  local data="$work/data-q$1"
  cat > "$work/agent-q$1.toml" <<CONF
[agent]
id = "bench"
data_dir = "$data"
[storage]
max_disk = "8GiB"
ack_delay = "$ACK_DELAY"
[upstream]
broker = "mqtt://127.0.0.1:$port"
[http]
listen = "127.0.0.1:$http"
[[mqtt]]
broker = "mqtt://127.0.0.1:$port"
client_id = "bench-agent-q$1"
qos = $1
clean_session = false
  [[mqtt.subscribe]]
  topic = "plant/{line}/{machine}/telemetry"
  format = "json"
  sensor = "{machine}.{field}"
  timestamp = "ts"
CONF
  # Create the session, then queue the stream while the agent is away.
  "$bin" --log warn run --config "$work/agent-q$1.toml" & local pid=$!
  sleep 1; kill -TERM $pid; wait $pid || true
  publish "$1"
  local start end stored=0
  start=$(date +%s.%N)
  "$bin" --log warn run --config "$work/agent-q$1.toml" & pid=$!
  while [ "$stored" -lt $((2 * N)) ]; do
    sleep 0.05
    stored=$(curl -s "127.0.0.1:$http/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_stored"])' 2>/dev/null || echo 0)
  done
  end=$(date +%s.%N)
  local rss cpu
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  cpu=$(python3 -c "import os; t=open('/proc/$pid/stat').read().split(')')[1].split(); print((int(t[11])+int(t[12]))/os.sysconf('SC_CLK_TCK'))")
  kill -TERM $pid; wait $pid || true
  python3 -c "d=$end-$start; print(f'{$N/d:.0f} {2*$N/d:.0f} {100*$cpu/d:.0f} {$rss/1024:.0f}')"
}

printf '| consumer | QoS | messages/s | samples/s durable | CPU %% | peak RSS MiB |\n|---|---|---|---|---|---|\n'
for q in 0 1; do
  printf '| mosquitto_sub (limit) | %s | %s | – | – | – |\n' "$q" "$(sub_rate $q)"
  read -r mps sps cpu rss <<< "$(agent_rate $q)"
  printf '| forewarn | %s | %s | %s | %s | %s |\n' "$q" "$mps" "$sps" "$cpu" "$rss"
done
echo "N=$N messages of 2 samples; broker max_inflight_messages=$INFLIGHT; forewarn ack_delay=$ACK_DELAY"
