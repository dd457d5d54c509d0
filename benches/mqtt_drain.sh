#!/usr/bin/env bash
# MQTT ingestion at its limit: how fast a backlog drains. N QoS 1 messages are queued at a
# real Mosquitto for two offline persistent sessions (clean_session = false), then each
# consumer connects and drains its queue alone: mosquitto_sub -c (acknowledges at once and
# prints every message, to /dev/null) and forewarn (acknowledges each message only
# after its samples are fsynced in the store). No publisher paces either of them.
#   benches/mqtt_drain.sh [N]        (default 100000 messages, 2 samples each)
# Environment: INFLIGHT (broker's max_inflight_messages, default 1000), ACK_DELAY (default 10ms).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import paho.mqtt' 2>/dev/null || python3 -m pip install -q paho-mqtt==2.1.0
N=${1:-100000}
INFLIGHT=${INFLIGHT:-1000}
ACK_DELAY=${ACK_DELAY:-10ms}
cargo build --release -q
bin=$PWD/target/release/forewarn
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
http=$(free_port)
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
user root
max_queued_messages 0
max_queued_bytes 0
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

cat > "$work/agent.toml" <<CONF
[agent]
id = "bench"
data_dir = "$work/data"
[storage]
max_disk = "8GiB"
ack_delay = "$ACK_DELAY"
[upstream]
broker = "mqtt://127.0.0.1:$port"
[http]
listen = "127.0.0.1:$http"
[[mqtt]]
broker = "mqtt://127.0.0.1:$port"
client_id = "bench-agent"
qos = 1
clean_session = false
  [[mqtt.subscribe]]
  topic = "plant/{line}/{machine}/telemetry"
  format = "json"
  sensor = "{machine}.{field}"
  timestamp = "ts"
CONF

healthz() { curl -s "127.0.0.1:$http/healthz" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])" 2>/dev/null || echo 0; }

# Both sessions subscribe once and go away; the broker then queues everything for them.
mosquitto_sub -p "$port" -i bench-sub -c -q 1 -t 'plant/+/+/telemetry' -E
"$bin" --log warn run --config "$work/agent.toml" & pid=$!
until curl -s "127.0.0.1:$http/healthz" > /dev/null; do sleep 0.1; done
sleep 1
kill -TERM $pid; wait $pid || true
python3 benches/mqtt_publish.py "$port" 1 plant/line1/pump7/telemetry "$work/payloads"

# ---- mosquitto_sub: the limit -------------------------------------------------------
start=$(date +%s.%N)
mosquitto_sub -p "$port" -i bench-sub -c -q 1 -t 'plant/+/+/telemetry' -C "$N" -W 600 > /dev/null
end=$(date +%s.%N)
sub=$(python3 -c "print(f'{$N/($end-$start):.0f}')")

# ---- forewarn -----------------------------------------------------------------------
start=$(date +%s.%N)
"$bin" --log warn run --config "$work/agent.toml" & pid=$!
stored=0
deadline=$(( $(date +%s) + 600 ))
while [ "$stored" -lt $((2 * N)) ] && [ "$(date +%s)" -lt "$deadline" ]; do
  sleep 0.05
  stored=$(healthz samples_stored)
done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
cpu=$(python3 -c "import os; t=open('/proc/$pid/stat').read().split(')')[1].split(); print((int(t[11])+int(t[12]))/os.sysconf('SC_CLK_TCK'))")
kill -TERM $pid; wait $pid || true
read -r mps sps cpu_pct rss_mib kept <<< "$(python3 -c "d=$end-$start; print(f'{$stored/2/d:.0f} {$stored/d:.0f} {100*$cpu/d:.0f} {$rss/1024:.0f} {100*$stored/2/$N:.1f}')")"

printf '| consumer (drains a queued backlog) | messages/s | samples/s durable | CPU %% | peak RSS MiB | messages stored |\n|---|---|---|---|---|---|\n'
printf '| mosquitto_sub -c | %s | – | – | – | – |\n' "$sub"
printf '| forewarn | %s | %s | %s | %s | %s %% |\n' "$mps" "$sps" "$cpu_pct" "$rss_mib" "$kept"
echo "N=$N QoS 1 messages of 2 samples queued for each offline session; max_inflight_messages=$INFLIGHT; ack_delay=$ACK_DELAY; forewarn's time includes its start-up"
