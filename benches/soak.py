#!/usr/bin/env python3
"""Soak: forewarn under mixed input and faults for a long while, then an account.

A real Mosquitto (persistent, so queued QoS 1 messages survive its restarts) and the
release agent with one persistent QoS 1 input. A publisher sends a steady mix: good JSON
messages (two values each, every one with its own timestamp), malformed payloads,
oversized payloads (over max_payload), and readings stamped before 2000 or far in the
future. Meanwhile the agent is killed with kill -9 and started again, the broker is
restarted, and (as root, on a tmpfs) the disk is filled below min_free_disk and emptied.

At the end the publisher stops, the agent drains the broker's queue, and the store is
read back: every good message the broker acknowledged to the publisher must be stored
(the agent acknowledges only what is durable, so nothing acknowledged may be missing).
RSS and CPU of the agent are sampled every 10 s.

    benches/soak.py [SECONDS] [RATE]      (default 3600 s, 200 messages/s)
Prints a Markdown summary; exits 1 if a good message is missing.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

try:
    import paho.mqtt.client as mqtt
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "paho-mqtt==2.1.0"], check=True)
    import paho.mqtt.client as mqtt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "forewarn")
DURATION = int(sys.argv[1]) if len(sys.argv) > 1 else 3600
RATE = int(sys.argv[2]) if len(sys.argv) > 2 else 200
KILL_EVERY, BROKER_EVERY, DISK_EVERY, DISK_HOLD = 90, 240, 300, 20
T0 = 1_700_000_000_000  # good messages are stamped T0 + n ms: distinct, in the past


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, within=10.0):
    end = time.time() + within
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    def __init__(self, work):
        self.port, self.work = free_port(), work
        with open(os.path.join(work, "mosquitto.conf"), "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n"
                    f"persistence true\npersistence_location {work}/\nautosave_interval 5\n"
                    "max_queued_messages 0\nmax_inflight_messages 1000\nmessage_size_limit 0\n")
        self.proc = None
        self.start()

    def start(self):
        mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = open(os.path.join(self.work, "mosquitto.log"), "a")
        self.proc = subprocess.Popen([mosq, "-c", os.path.join(self.work, "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.port)

    def restart(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class Agent:
    def __init__(self, work, data, broker_port):
        self.http = free_port()
        self.config = os.path.join(work, "forewarn.toml")
        with open(self.config, "w") as f:
            f.write(f"""[agent]
id = "soak"
data_dir = "{data}"
[storage]
max_disk = "1GiB"
min_free_disk = "8MiB"
retention_interval = "2s"
[upstream]
broker = "mqtt://127.0.0.1:{broker_port}"
[http]
listen = "127.0.0.1:{self.http}"
[[mqtt]]
broker = "mqtt://127.0.0.1:{broker_port}"
client_id = "soak-agent"
qos = 1
clean_session = false
  [[mqtt.subscribe]]
  topic = "plant/{{machine}}/telemetry"
  format = "json"
  sensor = "{{machine}}.{{field}}"
  timestamp = "ts"
""")
        self.log = open(os.path.join(work, "agent.log"), "a")
        self.proc = None
        self.cpu_before = 0.0
        self.start()

    def start(self):
        self.proc = subprocess.Popen([BIN, "--log", "warn", "run", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        wait_port(self.http, 20)

    def kill9(self):
        self.cpu_before += self.cpu()
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.cpu_before += self.cpu()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def health(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=2) as r:
                return json.load(r)
        except Exception:
            return {}

    def rss_mib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def cpu(self):
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                t = f.read().split(")")[1].split()
            return (int(t[11]) + int(t[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0


class Publisher(threading.Thread):
    """Publishes the mix at RATE messages/s and remembers which good ones the broker took."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop_flag = port, threading.Event()
        self.acked, self.sent = set(), {"good": 0, "malformed": 0, "oversized": 0, "out_of_range": 0}
        self.pending, self.lock = {}, threading.Lock()
        self.error = None

    def on_publish(self, _client, _userdata, mid, _rc, _props):
        with self.lock:
            n = self.pending.pop(mid, None)
            if n is not None:
                self.acked.add(n)

    def run(self):
        try:
            self.publish_all()
        except Exception as e:  # the soak must not go on quietly without input
            self.error = e
            raise

    def publish_all(self):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-pub", clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.max_inflight_messages_set(500)
        c.on_publish = self.on_publish
        c.connect_async("127.0.0.1", self.port)
        c.reconnect_delay_set(0.2, 2)
        c.loop_start()
        n, rng, started = 0, random.Random(7), time.time()
        while not self.stop_flag.is_set():
            wait = started + n / RATE - time.time()
            if wait > 0:
                time.sleep(wait)
            r, machine = rng.random(), f"m{n % 20}"
            topic = f"plant/{machine}/telemetry"
            if r < 0.05:
                c.publish(topic, b'{"temp": 1, "ts": ', qos=1)
                self.sent["malformed"] += 1
            elif r < 0.051:
                c.publish(topic, b"x" * (2 << 20), qos=1)
                self.sent["oversized"] += 1
            elif r < 0.06:
                ts = 946684799000 - 1000 if r < 0.055 else int(time.time() * 1000) + 86_400_000
                c.publish(topic, json.dumps({"ts": ts, "temp": 1.0}), qos=1)
                self.sent["out_of_range"] += 1
            else:
                body = json.dumps({"ts": T0 + n, "temp": 20 + n % 50, "vib": (n % 97) / 1000})
                info = c.publish(topic, body, qos=1)
                with self.lock:
                    self.pending[info.mid] = n
                self.sent["good"] += 1
            n += 1
        end = time.time() + 60
        while self.pending and time.time() < end:
            time.sleep(0.1)
        c.loop_stop()
        c.disconnect()


def fill_disk(mnt, leave):
    st = os.statvfs(mnt)
    size = max(st.f_bavail * st.f_frsize - leave, 0)
    with open(os.path.join(mnt, "filler"), "wb") as f:
        chunk = b"\xa5" * (1 << 20)
        while size > 0:
            try:
                f.write(chunk[: min(size, len(chunk))])
            except OSError:
                break
            size -= len(chunk)


def stored_timestamps(agent):
    out = subprocess.run([BIN, "query", "--config", agent.config, "--sensor", "*.temp", "--format", "csv"],
                         capture_output=True, text=True, check=True).stdout
    got = set()
    for line in out.splitlines()[1:]:
        ts = line.split(",")[1]
        got.add(ts)
    return got


def main():
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="forewarn-soak-")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    tmpfs = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", mnt]).returncode == 0
    broker = Broker(work)
    agent = Agent(work, os.path.join(mnt, "data"), broker.port)
    pub = Publisher(broker.port)
    pub.start()
    started = last_kill = last_broker = last_disk = time.time()
    samples, disk_full_until, kills, restarts, fills = [], None, 0, 0, 0
    while time.time() - started < DURATION and pub.is_alive():
        time.sleep(1)
        now = time.time()
        if now - last_kill >= KILL_EVERY:
            agent.kill9()
            agent.start()
            kills, last_kill = kills + 1, now
        if now - last_broker >= BROKER_EVERY:
            broker.restart()
            restarts, last_broker = restarts + 1, now
        if tmpfs and disk_full_until is None and now - last_disk >= DISK_EVERY:
            fill_disk(mnt, 4 << 20)
            disk_full_until, fills = now + DISK_HOLD, fills + 1
        if disk_full_until is not None and now >= disk_full_until:
            os.remove(os.path.join(mnt, "filler"))
            disk_full_until, last_disk = None, now
        if int(now - started) % 10 == 0:
            samples.append((int(now - started), agent.rss_mib()))
    pub.stop_flag.set()
    pub.join()
    if pub.error is not None:
        print(f"the publisher failed: {pub.error}", file=sys.stderr)
        sys.exit(2)
    if disk_full_until is not None:
        os.remove(os.path.join(mnt, "filler"))
    # Drain: the broker hands the agent what it still queues; wait until nothing moves.
    last, still = -1, 0
    while still < 10:
        time.sleep(1)
        stored = agent.health().get("samples_stored", 0)
        still = still + 1 if stored == last else 0
        last = stored
    cpu = agent.cpu_before + agent.cpu()
    health = agent.health()
    agent.stop()
    got = stored_timestamps(agent)
    broker.stop()
    from datetime import datetime, timezone
    def iso(n):
        return datetime.fromtimestamp((T0 + n) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    missing = [n for n in pub.acked if iso(n) not in got]
    rss = [r for _, r in samples if r > 0]
    third = max(len(rss) // 3, 1)
    print(f"| soak: {DURATION} s at {RATE} msg/s | value |\n|---|---|")
    for k, v in pub.sent.items():
        print(f"| published {k} | {v} |")
    print(f"| good messages acknowledged by the broker | {len(pub.acked)} |")
    print(f"| of them stored | {len(pub.acked) - len(missing)} |")
    print(f"| missing | {len(missing)} |")
    print(f"| kill -9 of the agent / broker restarts / disk fills | {kills} / {restarts} / {fills} |")
    print(f"| malformed / oversized / future / past counted | {counted(health, 'malformed')} / {counted(health, 'oversized')} / {counted(health, 'future')} / {counted(health, 'past')} |")
    if rss:
        print(f"| RSS MiB: first third mean / last third mean / max | {sum(rss[:third])/third:.1f} / {sum(rss[-third:])/third:.1f} / {max(rss):.1f} |")
    print(f"| agent CPU | {100 * cpu / DURATION:.1f} % of one core |")
    if tmpfs:
        subprocess.run(["umount", "-l", mnt])
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missing else 0)


def counted(health, name):
    return sum(v.get(name, 0) for v in health.get("mqtt", {}).values())


if __name__ == "__main__":
    main()
