#!/usr/bin/env bash
# Footprint of forewarn while it polls the demo plant: release binary size, and the RSS
# (current and peak) of the demo process — plant simulator, embedded broker, agent and
# subscriber together, so an upper bound for the agent alone — after SECS seconds.
#   benches/demo_footprint.sh [SECS]     (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release -q
bin=target/release/forewarn
printf 'binary: %s bytes (%s)\n' "$(stat -c %s "$bin")" "$(du -h "$bin" | cut -f1)"
"$bin" --log warn demo --duration $((secs + 5)) > /tmp/forewarn-footprint.out &
pid=$!
sleep "$secs"
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
cpu=$(ps -o times= -p $pid)
printf 'after %ss: RSS %s KiB, peak %s KiB, CPU %ss total\n' "$secs" "$rss" "$hwm" "$cpu"
wait $pid
printf 'alerts printed: %s\n' "$(wc -l < /tmp/forewarn-footprint.out)"
