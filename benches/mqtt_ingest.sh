#!/usr/bin/env bash
# MQTT ingestion throughput, side by side with mosquitto_sub draining the same queue.
#
# A real Mosquitto on a free loopback port; a publisher (benches/mqtt_publish.py, paho-mqtt
# with 1000 messages in flight) sends N small JSON messages
# (2 values each) to a connected consumer. mosquitto_sub (which acknowledges at once and
# writes nothing) is the limit of this machine; forewarn acknowledges each QoS 1 message
# only after its samples are durable in the store (fsynced).
#   benches/mqtt_ingest.sh [N]        (default 200000 messages, 2 samples each)
# Environment: INFLIGHT (broker's max_inflight_messages, default 1000), ACK_DELAY (default 10ms).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import paho.mqtt' 2>/dev/null || python3 -m pip install -q paho-mqtt==2.1.0
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
queue_qos0_messages true
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
  python3 benches/mqtt_publish.py "$port" "$1" plant/line1/pump7/telemetry "$work/payloads"
}

# Both consumers are connected and subscribed, then mosquitto_pub sends the N messages as
# fast as the broker takes them; a rate is N over the time from the first publish to the
# consumer having all of them (mosquitto_sub: received; forewarn: durable in the store).

# ---- mosquitto_sub: the limit -------------------------------------------------------
sub_rate() { # $1 = qos
  mosquitto_sub -p "$port" -i "bench-sub-q$1" -q "$1" -t 'plant/+/+/telemetry' -C "$N" -W 600 > /dev/null &
  local sub=$! start end
  sleep 0.5
  start=$(date +%s.%N)
  publish "$1"
  wait $sub
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
  "$bin" --log warn run --config "$work/agent-q$1.toml" & local pid=$!
  until curl -s "127.0.0.1:$http/healthz" > /dev/null; do sleep 0.1; done
  sleep 0.5
  local start end stored=0 last=-1 still=0
  start=$(date +%s.%N)
  publish "$1" & local pub=$!
  # Until everything is stored, or (QoS 0: the broker drops what a slow consumer cannot
  # take) nothing more arrives for 2 s after the publisher is done.
  while [ "$stored" -lt $((2 * N)) ] && [ "$still" -lt 40 ]; do
    sleep 0.05
    stored=$(curl -s "127.0.0.1:$http/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_stored"])' 2>/dev/null || echo 0)
    if [ "$stored" -eq "$last" ] && ! kill -0 $pub 2>/dev/null; then still=$((still + 1)); else still=0; end=$(date +%s.%N); fi
    last=$stored
  done
  wait $pub || true
  local rss cpu
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  cpu=$(python3 -c "import os; t=open('/proc/$pid/stat').read().split(')')[1].split(); print((int(t[11])+int(t[12]))/os.sysconf('SC_CLK_TCK'))")
  kill -TERM $pid; wait $pid || true
  python3 -c "d=$end-$start; print(f'{$stored/2/d:.0f} {$stored/d:.0f} {100*$cpu/d:.0f} {$rss/1024:.0f} {100*$stored/2/$N:.1f}')"
}

printf '| consumer | QoS | messages/s | samples/s durable | CPU %% | peak RSS MiB | messages kept |\n|---|---|---|---|---|---|---|\n'
for q in 0 1; do
  printf '| mosquitto_sub (limit) | %s | %s | – | – | – | – |\n' "$q" "$(sub_rate $q)"
  read -r mps sps cpu rss kept <<< "$(agent_rate $q)"
  printf '| forewarn | %s | %s | %s | %s | %s | %s %% |\n' "$q" "$mps" "$sps" "$cpu" "$rss" "$kept"
done
echo "N=$N messages of 2 samples; broker max_inflight_messages=$INFLIGHT; forewarn ack_delay=$ACK_DELAY"
