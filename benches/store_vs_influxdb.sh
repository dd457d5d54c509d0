#!/usr/bin/env bash
# forewarn's sample store against InfluxDB 1.x (Debian's influxdb package) on the same data:
# ingest rate, bytes per sample on disk, peak RSS and the time to read one sensor-day.
#
#   benches/store_vs_influxdb.sh                      # 500 sensors x 24 h at 1 Hz = 43.2 M samples
#   SENSORS=50 HOURS=2 benches/store_vs_influxdb.sh   # a quick run
#
# What it does:
#  1. installs what is missing (influxdb, influxdb-client, GNU time, numpy) and runs
#     `cargo build --release`; the binary is copied into the work dir so a rebuild during
#     the run cannot change it;
#  2. generates the signals once (benches/gen_signals.py, fixed seed): a wide CSV for
#     forewarn and the same samples as InfluxDB line protocol in 10,000-line batch files;
#  3. forewarn: `forewarn import` under /usr/bin/time -v (wall, CPU, max RSS), `du` of the
#     data dir, `forewarn query` of sensor s17 over the whole generated day (median of 5,
#     process start included; an empty-range query gives the start-up cost to subtract);
#  4. InfluxDB: its own influxd on 127.0.0.1:$INFLUX_PORT with data/meta/wal under the work
#     dir, every other listener off; the batches are POSTed to /write?precision=s by
#     $INFLUX_WRITERS keep-alive writers; then it waits until the cache is snapshotted and
#     the shard fully compacted (cold durations shortened to 10 s / 30 s in the config,
#     polled until the WAL is empty and the data dir stops changing) before `du`;
#     one sensor-day via HTTP /query (CSV) and via `influx -execute` (median of 5 each);
#     peak RSS is influxd's VmHWM;
#  5. SKAB: every SKAB recording (`datetime;...` files under $SKAB_DIR, read in place) into
#     a fresh forewarn store, once with the label columns and once without them;
#  6. prints a Markdown table and writes it to benches/results/store_vs_influxdb.md
#     (other sizes: benches/results/store_vs_influxdb.<S>x<H>h.md).
#
# Environment: SENSORS (500), HOURS (24), INFLUX_PORT (18086), INFLUX_WRITERS (2),
#   SKAB_DIR (../shared/data/skab next to the repo), FOREWARN_BIN (a prebuilt forewarn to
#   measure instead of building the work tree; FOREWARN_DESC says what it is),
#   WORK_DIR (a new /tmp/forewarn-bench.* dir, removed at the end unless KEEP=1; pass an
#   existing one to reuse its generated signals), SETTLE_MAX (influx compaction wait, 300 s).
# Everything listens on loopback only; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SENSORS=${SENSORS:-500}
HOURS=${HOURS:-24}
SECS=$((HOURS * 3600))
SAMPLES=$((SENSORS * SECS))
INFLUX_PORT=${INFLUX_PORT:-18086}
INFLUX_RPC_PORT=$((INFLUX_PORT + 2))
INFLUX_WRITERS=${INFLUX_WRITERS:-2}
SETTLE_MAX=${SETTLE_MAX:-300}
SKAB_DIR=${SKAB_DIR:-$ROOT/../shared/data/skab}
START_EPOCH=1704067200 # 2024-01-01 00:00:00 UTC
QUERY_SENSOR=s17
RUNS=5

if [ "$SENSORS" = 500 ] && [ "$HOURS" = 24 ]; then
    RESULT=$ROOT/benches/results/store_vs_influxdb.md
else
    RESULT=$ROOT/benches/results/store_vs_influxdb.${SENSORS}x${HOURS}h.md
fi
CMD=benches/store_vs_influxdb.sh
[ "$SENSORS" = 500 ] && [ "$HOURS" = 24 ] || CMD="SENSORS=$SENSORS HOURS=$HOURS $CMD"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
fmt_int() { echo "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta'; }
export LC_NUMERIC=C

T_BEGIN=$(now_ns)

# ---------------------------------------------------------------- prerequisites
need_apt=()
command -v influxd >/dev/null || need_apt+=(influxdb)
command -v influx >/dev/null || need_apt+=(influxdb-client)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    apt-get update -qq
    # the package's own service must not start (we run our own influxd)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # where systemd runs, the package starts its own service on :8086 (all interfaces)
    if command -v systemctl >/dev/null && systemctl is-active --quiet influxdb 2>/dev/null; then
        systemctl stop influxdb; systemctl disable --quiet influxdb || true
    fi
fi
python3 -c 'import numpy' 2>/dev/null || { log "installing numpy"; python3 -m pip install -q numpy; }
if [ -z "${FOREWARN_BIN:-}" ]; then
    log "building forewarn (cargo build --release)"
    (cd "$ROOT" && cargo build --release -q)
    FOREWARN=$ROOT/target/release/forewarn
    FW_DESC=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || FW_DESC="$FW_DESC + uncommitted changes"
else
    FOREWARN=$FOREWARN_BIN
    FW_DESC=${FOREWARN_DESC:-$FOREWARN_BIN}
fi

WORK=${WORK_DIR:-$(mktemp -d /tmp/forewarn-bench.XXXXXX)}
mkdir -p "$WORK"
INFLUX_PID=
cleanup() {
    if [ -n "$INFLUX_PID" ] && kill -0 "$INFLUX_PID" 2>/dev/null; then
        kill "$INFLUX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$INFLUX_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$INFLUX_PID" 2>/dev/null || true
    fi
    if [ -z "${WORK_DIR:-}" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

BIN=$WORK/forewarn
cp "$FOREWARN" "$BIN"
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
INFLUX_VERSION=$(influxd version 2>/dev/null | awk '{print $2}')

# ---------------------------------------------------------------- data
SIG=$WORK/signals-${SENSORS}x${SECS}
if [ ! -f "$SIG/meta.json" ]; then
    log "generating $SENSORS sensors x $SECS s into $SIG"
    python3 "$ROOT/benches/gen_signals.py" "$SIG" --sensors "$SENSORS" --seconds "$SECS" \
        --start "$START_EPOCH" --batch-lines 10000 2>"$WORK/gen.log"
fi
sync # no writeback of the generated files during the measurements
CSV_BYTES=$(stat -c %s "$SIG/wide.csv")
LP_FILES=$(find "$SIG/lp" -name '*.lp' | wc -l)
log "data: $(fmt_int $SAMPLES) samples, CSV $(awk -v b="$CSV_BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MiB, $LP_FILES line-protocol files"

FROM=$(date -u -d "@$START_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d "@$((START_EPOCH + SECS))" +%Y-%m-%dT%H:%M:%SZ)
EMPTY_FROM=$(date -u -d "@$((START_EPOCH - 2 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
EMPTY_TO=$(date -u -d "@$((START_EPOCH - 86400))" +%Y-%m-%dT%H:%M:%SZ)

fw_config() { # data_dir -> config path
    local cfg=$1.toml
    cat >"$cfg" <<EOF
[agent]
id = "bench"
data_dir = "$1"
[storage]
max_disk = "64GiB"
[upstream]
broker = "mqtt://127.0.0.1:1883"
[http]
enabled = false
EOF
    echo "$cfg"
}
# "disk 28.1 MiB, 43200000 samples in 12000 chunks, 0.68 bytes/sample" -> 43200000
stats_samples() { "$BIN" store-stats --config "$1" | head -1 | sed -E 's/.*, ([0-9]+) samples.*/\1/'; }
tv() { awk -F': ' -v k="$2" 'index($0, k) {gsub(/^[ \t]+/, "", $2); print $2}' "$1"; }

# ---------------------------------------------------------------- forewarn
log "forewarn: import"
FW_DATA=$WORK/forewarn-data
rm -rf "$FW_DATA"
FW_CFG=$(fw_config "$FW_DATA")
t0=$(now_ns)
/usr/bin/time -v -o "$WORK/fw-import.time" "$BIN" import --config "$FW_CFG" --csv "$SIG/wide.csv" >"$WORK/fw-import.out"
t1=$(now_ns)
FW_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
FW_CPU=$(awk -v u="$(tv "$WORK/fw-import.time" 'User time')" -v s="$(tv "$WORK/fw-import.time" 'System time')" 'BEGIN {printf "%.2f", u + s}')
FW_RSS_KB=$(tv "$WORK/fw-import.time" 'Maximum resident set size')
FW_ROWS_SAMPLES=$(tail -1 "$WORK/fw-import.out")
sync
FW_DU_B=$(du -sb "$FW_DATA" | cut -f1)
FW_DU_ALLOC=$(du -sB1 "$FW_DATA" | cut -f1)
FW_STATS=$("$BIN" store-stats --config "$FW_CFG" | head -2)
FW_STORED=$(stats_samples "$FW_CFG")
log "forewarn: import $FW_WALL s wall, $FW_CPU s CPU, max RSS $FW_RSS_KB KiB, du $FW_DU_B B"

log "forewarn: one sensor-day reads"
# timed OUT CMD...: runs CMD once with stdout to OUT; prints "wall_ms cpu_ms" (the child's
# own user+sys time from wait4, which other load on the machine does not inflate)
cat >"$WORK/timed.py" <<'PY'
import os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
t0 = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
_, status, ru = os.wait4(pid, 0)
wall = (time.perf_counter() - t0) * 1000
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{cmd[0]} failed: {status}")
print(f"{wall:.2f} {(ru.ru_utime + ru.ru_stime) * 1000:.2f}")
PY
timed() { python3 "$WORK/timed.py" "$@"; }
col() { awk -v c="$1" '{print $c}' "$2"; }
fw_query() { # from to [extra args] -> "wall_ms cpu_ms"; the result in $WORK/fw-q.csv
    timed "$WORK/fw-q.csv" "$BIN" query --config "$FW_CFG" --sensor "$QUERY_SENSOR" --from "$1" --to "$2" "${@:3}" --format csv
}
fw_query "$FROM" "$TO" >/dev/null # the first open after an import also writes sled's snapshot
: >"$WORK/fw-q.ms"; : >"$WORK/fw-q0.ms"
for _ in $(seq $RUNS); do
    fw_query "$FROM" "$TO" >>"$WORK/fw-q.ms"
    fw_query "$EMPTY_FROM" "$EMPTY_TO" >>"$WORK/fw-q0.ms"
done
: >"$WORK/fw-qagg.ms"
for _ in $(seq $RUNS); do fw_query "$FROM" "$TO" --every 1h >>"$WORK/fw-qagg.ms"; done
FW_QAGG_MS=$(col 1 "$WORK/fw-qagg.ms" | median)
FW_QAGG_CPU=$(col 2 "$WORK/fw-qagg.ms" | median)
fw_query "$FROM" "$TO" >/dev/null
FW_Q_ROWS=$(($(wc -l <"$WORK/fw-q.csv") - 1))
/usr/bin/time -v -o "$WORK/fw-query.time" "$BIN" query --config "$FW_CFG" --sensor "$QUERY_SENSOR" --from "$FROM" --to "$TO" --format csv >/dev/null
FW_Q_RSS_KB=$(tv "$WORK/fw-query.time" 'Maximum resident set size')
FW_Q_MS=$(col 1 "$WORK/fw-q.ms" | median)
FW_Q0_MS=$(col 1 "$WORK/fw-q0.ms" | median)
FW_Q_CPU=$(col 2 "$WORK/fw-q.ms" | median)
FW_Q0_CPU=$(col 2 "$WORK/fw-q0.ms" | median)
FW_Q_MIN=$(col 1 "$WORK/fw-q.ms" | sort -g | head -1)
FW_Q0_MIN=$(col 1 "$WORK/fw-q0.ms" | sort -g | head -1)
# the read itself: fastest full-range run minus fastest empty-range run (the least disturbed
# run of each; medians can cross over when other processes load the machine)
FW_Q_NET=$(awk -v a="$FW_Q_MIN" -v b="$FW_Q0_MIN" 'BEGIN {printf "%.2f", a - b}')
FW_DU_AFTER_Q=$(du -sb "$FW_DATA" | cut -f1)
FW_BPS_AFTER_Q=$(awk -v d="$FW_DU_AFTER_Q" -v n="$FW_STORED" 'BEGIN {printf "%.3f", d / n}')
log "forewarn: sensor-day $FW_Q_MS ms (empty range $FW_Q0_MS ms), $FW_Q_ROWS rows"

# ---------------------------------------------------------------- SKAB
SKAB_FILES=()
SKAB_LINE="not run: no SKAB files under $SKAB_DIR"
SKAB8_LINE=
if [ -d "$SKAB_DIR" ]; then
    SKAB_DIR=$(cd "$SKAB_DIR" && pwd)
    while IFS= read -r f; do
        head -c 9 "$f" | grep -q '^datetime;' && SKAB_FILES+=("$f")
    done < <(find "$SKAB_DIR" -name '*.csv' | sort)
fi
if [ ${#SKAB_FILES[@]} -gt 0 ]; then
    log "SKAB: ${#SKAB_FILES[@]} recordings"
    skab_store() { # name, then a command that prints each file's path to import
        local dir=$WORK/$1 cfg rows=0 f
        rm -rf "$dir"; cfg=$(fw_config "$dir")
        for f in "${SKAB_FILES[@]}"; do
            "$BIN" import --config "$cfg" --csv "$(eval "$2")" --sep ';' >"$WORK/$1.out"
            rows=$((rows + $(tail -1 "$WORK/$1.out" | sed -E 's/^done: ([0-9]+) rows.*/\1/')))
        done
        local du_b stored
        du_b=$(du -sb "$dir" | cut -f1); stored=$(stats_samples "$cfg")
        echo "$du_b $stored $rows $(du -sB1 "$dir" | cut -f1)"
    }
    # in place, all columns (8 sensors + the anomaly and changepoint labels)
    read -r SK_DU SK_N SK_ROWS SK_ALLOC < <(skab_store skab-all 'echo "$f"')
    # the 8 sensor columns only: the files without their labels, written to the work dir
    mkdir -p "$WORK/skab8"
    read -r SK8_DU SK8_N _ SK8_ALLOC < <(skab_store skab-8 'o=$WORK/skab8/$(echo "$f" | md5sum | cut -c1-8).csv; cut -d";" -f1-9 "$f" >"$o"; echo "$o"')
    SKAB_LINE=$(awk -v d="$SK_DU" -v n="$SK_N" 'BEGIN {printf "%.2f", d / n}')
    SKAB8_LINE=$(awk -v d="$SK8_DU" -v n="$SK8_N" 'BEGIN {printf "%.2f", d / n}')
    log "SKAB: $SK_N samples in $SK_DU B ($SKAB_LINE B/sample); sensors only $SK8_N in $SK8_DU B ($SKAB8_LINE)"
fi

# ---------------------------------------------------------------- InfluxDB
log "influxdb: starting influxd $INFLUX_VERSION on 127.0.0.1:$INFLUX_PORT"
IX=$WORK/influxdb
rm -rf "$IX"; mkdir -p "$IX"
cat >"$IX/influxdb.conf" <<EOF
# Debian's build reads reporting-enabled, upstream 1.x reporting-disabled
reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$IX/meta"
[data]
  dir = "$IX/data"
  wal-dir = "$IX/wal"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false
  cache-max-memory-size = "1g"
  cache-snapshot-memory-size = "25m"
  # shortened from 10m / 4h so the cache is snapshotted and the shard fully compacted
  # within the benchmark (the on-disk size is measured after that)
  cache-snapshot-write-cold-duration = "10s"
  compact-full-write-cold-duration = "30s"
[coordinator]
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[ifql]
  enabled = false
[logging]
  level = "warn"
[subscriber]
  enabled = false
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
[continuous_queries]
  enabled = false
EOF
influxd run -config "$IX/influxdb.conf" >"$IX/influxd.log" 2>&1 &
INFLUX_PID=$!
URL=http://127.0.0.1:$INFLUX_PORT
for _ in $(seq 100); do
    curl -sf -o /dev/null "$URL/ping" && break
    kill -0 "$INFLUX_PID" 2>/dev/null || { cat "$IX/influxd.log" >&2; exit 1; }
    sleep 0.2
done
curl -sf -o /dev/null "$URL/ping" || { log "influxd did not answer"; exit 1; }
curl -sf -o /dev/null -XPOST "$URL/query" --data-urlencode "q=CREATE DATABASE bench"

proc_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; } # CLK_TCK 100
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

log "influxdb: writing $LP_FILES batches with $INFLUX_WRITERS writers"
IX_CPU0=$(proc_cpu "$INFLUX_PID")
python3 - "$SIG/lp" "$INFLUX_PORT" "$INFLUX_WRITERS" >"$WORK/ix-write.json" <<'PY'
import http.client, json, os, resource, sys, threading, time
lp_dir, port, writers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(os.path.join(lp_dir, f) for f in os.listdir(lp_dir) if f.endswith(".lp"))
lock = threading.Lock()
state = {"next": 0, "lines": 0, "bytes": 0, "retries": 0, "errors": []}

def worker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= len(files):
            break
        with open(files[i], "rb") as f:
            body = f.read()
        for attempt in range(20):
            try:
                conn.request("POST", "/write?db=bench&precision=s", body,
                             {"Content-Type": "text/plain; charset=utf-8"})
                r = conn.getresponse()
                msg = r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, msg = -1, str(e).encode()
            else:
                status = r.status
            if status == 204:
                break
            with lock:
                state["retries"] += 1
                if len(state["errors"]) < 5:
                    state["errors"].append(f"{status} {msg[:200]!r}")
            time.sleep(0.05 * (attempt + 1))
        else:
            raise SystemExit(f"batch {files[i]} failed 20 times")
        with lock:
            state["lines"] += body.count(b"\n")
            state["bytes"] += len(body)
    conn.close()

t0 = time.perf_counter()
threads = [threading.Thread(target=worker) for _ in range(writers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "lines": state["lines"], "bytes": state["bytes"],
                  "retries": state["retries"], "errors": state["errors"],
                  "client_cpu": ru.ru_utime + ru.ru_stime}))
PY
IX_CPU1=$(proc_cpu "$INFLUX_PID")
IX_HWM_INGEST=$(hwm_kb "$INFLUX_PID")
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/ix-write.json" "$1"; }
IX_WALL=$(jget wall); IX_LINES=$(jget lines); IX_RETRIES=$(jget retries); IX_CLIENT_CPU=$(jget client_cpu)
IX_CPU=$(awk -v a="$IX_CPU0" -v b="$IX_CPU1" 'BEGIN {printf "%.2f", b - a}')
log "influxdb: $IX_LINES points in $(printf %.1f "$IX_WALL") s, influxd CPU $IX_CPU s, $IX_RETRIES retried batches"
[ "$IX_LINES" = "$SAMPLES" ] || log "WARNING: wrote $IX_LINES points, expected $SAMPLES"
[ "$IX_RETRIES" = 0 ] || log "write errors: $(jget errors)"

log "influxdb: waiting for the cache snapshot and full compaction (at most $SETTLE_MAX s)"
t_settle0=$(now_ns)
prev=; stable=0; waited=0
while [ "$waited" -lt "$SETTLE_MAX" ]; do
    sleep 5; waited=$((waited + 5))
    wal=$(du -sb "$IX/wal" | cut -f1)
    tsm=$(find "$IX/data/bench" -name '*.tsm' | wc -l)
    tmp=$(find "$IX/data/bench" -name '*.tmp' | wc -l)
    cur="$(du -sb "$IX/data" | cut -f1) $tsm"
    if [ "$wal" -lt 65536 ] && [ "$tmp" = 0 ] && [ "$cur" = "$prev" ] && [ "$tsm" -le 2 ]; then
        stable=$((stable + 1)); [ "$stable" -ge 3 ] && break
    else
        stable=0
    fi
    prev=$cur
done
IX_SETTLE=$(awk -v a="$t_settle0" -v b="$(now_ns)" 'BEGIN {printf "%.0f", (b - a) / 1e9}')
IX_TSM=$(find "$IX/data/bench" -name '*.tsm' | wc -l)
IX_SETTLED=yes; [ "$stable" -ge 3 ] || IX_SETTLED="no (gave up after $SETTLE_MAX s)"
sync
IX_DU_B=$(du -scb "$IX/data" "$IX/wal" | tail -1 | cut -f1)
IX_DU_ALLOC=$(du -scB1 "$IX/data" "$IX/wal" | tail -1 | cut -f1)
IX_HWM_SETTLED=$(hwm_kb "$INFLUX_PID")
IX_SERIES_B=$(du -sb "$IX/data/bench/_series" | cut -f1)
IX_SERIES_ALLOC=$(du -sB1 "$IX/data/bench/_series" | cut -f1)
IX_TSM_B=$(find "$IX/data/bench" -name '*.tsm' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
log "influxdb: settled=$IX_SETTLED after $IX_SETTLE s, $IX_TSM TSM files, du $IX_DU_B B"

log "influxdb: one sensor-day reads"
Q="SELECT value FROM m WHERE sensor='$QUERY_SENSOR' AND time >= '$FROM' AND time < '$TO'"
Q0="SELECT value FROM m WHERE sensor='$QUERY_SENSOR' AND time >= '$EMPTY_FROM' AND time < '$EMPTY_TO'"
ix_http() { # query -> seconds (curl's time_total: the request alone, no process start)
    curl -sf -G "$URL/query" -H 'Accept: application/csv' --data-urlencode db=bench \
        --data-urlencode epoch=s --data-urlencode "q=$1" -o "$WORK/ix-q.csv" -w '%{time_total}\n'
}
ix_cli() { # query -> "wall_ms cpu_ms" of the influx CLI, process start included
    timed "$WORK/ix-cli.csv" influx -host 127.0.0.1 -port "$INFLUX_PORT" -database bench \
        -precision s -format csv -execute "$1"
}
ix_http "$Q" >/dev/null
: >"$WORK/ix-http.s"; : >"$WORK/ix-http0.s"; : >"$WORK/ix-cli.ms"; : >"$WORK/ix-cli0.ms"
for _ in $(seq $RUNS); do
    ix_http "$Q" >>"$WORK/ix-http.s"
    ix_http "$Q0" >>"$WORK/ix-http0.s"
    ix_cli "$Q" >>"$WORK/ix-cli.ms"
    ix_cli "$Q0" >>"$WORK/ix-cli0.ms"
done
ix_http "$Q" >/dev/null
IX_Q_ROWS=$(($(wc -l <"$WORK/ix-q.csv") - 1))
IX_HTTP_MS=$(awk '{printf "%.2f\n", $1 * 1000}' "$WORK/ix-http.s" | median)
IX_HTTP0_MS=$(awk '{printf "%.2f\n", $1 * 1000}' "$WORK/ix-http0.s" | median)
IX_CLI_MS=$(col 1 "$WORK/ix-cli.ms" | median)
IX_CLI0_MS=$(col 1 "$WORK/ix-cli0.ms" | median)
IX_CLI_CPU=$(col 2 "$WORK/ix-cli.ms" | median)
IX_HTTP_MIN=$(awk '{printf "%.2f\n", $1 * 1000}' "$WORK/ix-http.s" | sort -g | head -1)
IX_HWM=$(hwm_kb "$INFLUX_PID")
log "influxdb: sensor-day HTTP $IX_HTTP_MS ms, CLI $IX_CLI_MS ms, $IX_Q_ROWS rows"
kill "$INFLUX_PID"; wait "$INFLUX_PID" 2>/dev/null || true; INFLUX_PID=

# ---------------------------------------------------------------- report
T_TOTAL=$(awk -v a="$T_BEGIN" -v b="$(now_ns)" 'BEGIN {printf "%.0f", (b - a) / 1e9}')
calc() { awk "BEGIN {printf \"$1\", $2}"; }
FW_RATE=$(calc %.0f "$SAMPLES / $FW_WALL")
FW_RATE_CPU=$(calc %.0f "$SAMPLES / $FW_CPU")
IX_RATE=$(calc %.0f "$IX_LINES / $IX_WALL")
IX_RATE_CPU=$(calc %.0f "$IX_LINES / $IX_CPU")
IX_RATE_CPU_ALL=$(calc %.0f "$IX_LINES / ($IX_CPU + $IX_CLIENT_CPU)")
FW_BPS=$(calc %.3f "$FW_DU_B / $FW_STORED")
FW_BPS_ALLOC=$(calc %.3f "$FW_DU_ALLOC / $FW_STORED")
IX_BPS=$(calc %.3f "$IX_DU_B / $IX_LINES")
IX_BPS_ALLOC=$(calc %.3f "$IX_DU_ALLOC / $IX_LINES")
mib() { calc %.1f "$1 / 1024"; }
yes_no() { if awk "BEGIN {exit !($1)}"; then echo yes; else echo "**no**"; fi; }
better() { if awk "BEGIN {exit !($1)}"; then echo forewarn; else echo "**InfluxDB**"; fi; }

mkdir -p "$(dirname "$RESULT")"
{
cat <<EOF
# forewarn store vs InfluxDB $INFLUX_VERSION

$SENSORS sensors x $HOURS h at 1 Hz = $(fmt_int $SAMPLES) samples (benches/gen_signals.py, seed
20240101: slow sine drift with a 1–6 h period + random walk + gaussian noise, quantised to 0.1 or
0.01). forewarn reads a $(awk -v b="$CSV_BYTES" 'BEGIN {printf "%.1f", b / 1048576}') MiB wide CSV with \`forewarn import\`; InfluxDB
gets the same samples as line protocol (\`m,sensor=sN value=V <s>\`, $LP_FILES batches of
10,000 lines, time-ordered) POSTed to \`/write?precision=s\` by $INFLUX_WRITERS keep-alive writers.

| | forewarn | InfluxDB $INFLUX_VERSION | target | forewarn meets it | better |
|---|---:|---:|---|---|---|
| ingest, samples/s (wall) | $(fmt_int $FW_RATE) | $(fmt_int $IX_RATE) | ≥ 1,000,000 on one core | $(yes_no "$FW_RATE >= 1000000") | $(better "$FW_RATE > $IX_RATE") |
| ingest, samples per CPU-second | $(fmt_int $FW_RATE_CPU) | $(fmt_int $IX_RATE_CPU) (influxd only) | | | $(better "$FW_RATE_CPU > $IX_RATE_CPU") |
| bytes/sample on disk (\`du -sb\`) | $FW_BPS ($FW_BPS_AFTER_Q once reopened) | $IX_BPS | ≤ 2 | $(yes_no "$FW_BPS <= 2") | $(better "$FW_BPS < $IX_BPS") |
| bytes/sample allocated (\`du -sB1\`) | $FW_BPS_ALLOC | $IX_BPS_ALLOC | | | $(better "$FW_BPS_ALLOC < $IX_BPS_ALLOC") |
| peak RSS while ingesting | $(mib $FW_RSS_KB) MiB | $(mib $IX_HWM_INGEST) MiB | < 64 MB | $(yes_no "$FW_RSS_KB * 1024 < 64000000") | $(better "$FW_RSS_KB < $IX_HWM_INGEST") |
| one sensor-day read, CLI process included (median of $RUNS) | $FW_Q_MS ms | $IX_CLI_MS ms | < 20 ms | $(yes_no "$FW_Q_MS < 20") | $(better "$FW_Q_MS < $IX_CLI_MS") |
| one sensor-day read, CPU time of that process (median) | $FW_Q_CPU ms | $IX_CLI_CPU ms (client only) | | | $(better "$FW_Q_CPU < $IX_CLI_CPU") |
| one sensor-day read, query alone (forewarn: minus start-up; InfluxDB: HTTP /query) | $FW_Q_NET ms | $IX_HTTP_MS ms | < 20 ms | $(yes_no "$FW_Q_NET < 20") | $(better "$FW_Q_NET < $IX_HTTP_MS") |
| SKAB, bytes/sample (\`du -sb\`), 8 sensors + 2 label columns | $SKAB_LINE | | ≤ 2 | | |
| SKAB, bytes/sample (\`du -sb\`), 8 sensor columns only | ${SKAB8_LINE:-–} | | ≤ 2 | | |

Command: \`$CMD\` (total run time $T_TOTAL s, data generation included).
Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(df -T "$WORK" | awk 'NR==2 {print $2}') on $(df "$WORK" | awk 'NR==2 {print $1}'), load average $LOAD_START at the start and $(cut -d" " -f1-3 /proc/loadavg) at the end; forewarn $FW_DESC; influxd $INFLUX_VERSION (Debian).

## Details

forewarn
- import: $FW_WALL s wall, $FW_CPU s CPU (user+sys), max RSS $FW_RSS_KB KiB; its own report: \`$FW_ROWS_SAMPLES\`
- store: $(fmt_int $FW_DU_B) B (\`du -sb\`), $(fmt_int $FW_DU_ALLOC) B allocated, $(fmt_int $FW_STORED) samples stored; \`store-stats\`: $(echo "$FW_STATS" | head -1)
- read: \`forewarn query --sensor $QUERY_SENSOR --from $FROM --to $TO --format csv\` → $FW_Q_ROWS rows; median $FW_Q_MS ms per process (fastest $FW_Q_MIN ms), $FW_Q0_MS ms (fastest $FW_Q0_MIN ms) for the same command on an empty range (start-up, config, opening sled), so $FW_Q_NET ms for the read itself (fastest minus fastest); CPU time (user+sys) median $FW_Q_CPU ms, $FW_Q0_CPU ms on the empty range; max RSS of the query $FW_Q_RSS_KB KiB; the same day with \`--every 1h\` (all $(fmt_int $FW_Q_ROWS) samples read and decoded, one row per hour printed) median $FW_QAGG_MS ms, CPU $FW_QAGG_CPU ms
- the first open after the import recovers sled's log, writes a snapshot and fsyncs (that query is not timed); the data dir is $(fmt_int $FW_DU_AFTER_Q) B ($FW_BPS_AFTER_Q B/sample) after it and stays so over further opens
- durability: the import fsyncs every 3,600 rows ($(fmt_int $((3600 * SENSORS))) samples)

SKAB
- $(if [ ${#SKAB_FILES[@]} -gt 0 ]; then echo "${#SKAB_FILES[@]} recordings (the \`datetime;…\` CSVs under \`${SKAB_DIR}\`; the detector outputs in \`reference/\` are not sensor data), each imported with \`forewarn import --sep ';'\` into one fresh store under the same sensor names (one test rig): $(fmt_int $SK_ROWS) rows, $(fmt_int $SK_N) samples stored, $(fmt_int $SK_DU) B (\`du -sb\`), $(fmt_int $SK_ALLOC) B allocated; without the \`anomaly\`/\`changepoint\` label columns (\`cut -f1-9\` copies in the work dir): $(fmt_int $SK8_N) samples, $(fmt_int $SK8_DU) B, $(fmt_int $SK8_ALLOC) B allocated"; else echo "$SKAB_LINE"; fi)
- sled grows its file in 512 KiB segments, so a store this small (about a quarter million samples) is measured in whole segments: these figures are dominated by that granularity, not by the chunk codec; SKAB's values are also 6-significant-digit readings, not quantised like the synthetic ones

InfluxDB
- config: own influxd, tsm1 engine, inmem index, WAL fsync on every write (default \`wal-fsync-delay = "0s"\`), HTTP access log, query log, \_internal monitoring, retention and CQ services off; \`cache-snapshot-write-cold-duration = "10s"\`, \`compact-full-write-cold-duration = "30s"\` (defaults 10m / 4h) so the shard is compacted within the run
- ingest: $(fmt_int $IX_LINES) points in $(printf %.2f "$IX_WALL") s wall; influxd used $IX_CPU s CPU, the Python writers $(printf %.2f "$IX_CLIENT_CPU") s ($(fmt_int $IX_RATE_CPU_ALL) samples per CPU-second both together); $IX_RETRIES batches had to be retried
- disk: waited $IX_SETTLE s after the last write until the WAL was empty and the data dir unchanged for 15 s (settled: $IX_SETTLED; $IX_TSM TSM files); data+wal $(fmt_int $IX_DU_B) B (\`du -sb\`), $(fmt_int $IX_DU_ALLOC) B allocated; meta dir not counted; of that the TSM files $(fmt_int $IX_TSM_B) B ($(calc %.3f "$IX_TSM_B / $IX_LINES") B/sample) and the series file \`_series\` $(fmt_int $IX_SERIES_B) B apparent, $(fmt_int $IX_SERIES_ALLOC) B allocated (preallocated sparse segments)
- RSS: VmHWM $IX_HWM_INGEST KiB right after ingest, $IX_HWM_SETTLED KiB after compaction, $IX_HWM KiB after the reads
- read: \`$Q\` → $IX_Q_ROWS rows; HTTP \`/query\` (CSV) median $IX_HTTP_MS ms (fastest $IX_HTTP_MIN ms; curl's time_total, empty range $IX_HTTP0_MS ms); \`influx -execute … -format csv\` median $IX_CLI_MS ms, CPU $IX_CLI_CPU ms (empty range $IX_CLI0_MS ms)
EOF
} >"$RESULT"
cat "$RESULT"
log "written to ${RESULT#"$ROOT"/}"
