#!/usr/bin/env python3
"""A Sparkplug B edge node for forewarn's interop tests, built on pysparkplug: payloads
encoded (and commands decoded) by an implementation independent of the agent's.

    sparkplug_peer.py --port PORT [--group plant1] [--node edge1] [--device pump]

Node "edge1" of group "plant1" with device "pump". Its births bind these aliases:

    node:   1 Temperature (Float)   2 Count (Int32)   3 Serial (String)
            4 Started (DateTime)    5 Node Control/Rebirth (Boolean)   bdSeq (Int64)
    device: 1 Speed (Double)

Commands, one per line on stdin; each prints "done CMD" on stdout once published:

    birth       NBIRTH and DBIRTH
    data N      alias-only NDATA (Temperature 123.456, Count -N, Serial "SN-N",
                Started at 1700000000 + N s) and DDATA (Speed 1000 + N), stamped now
    unknown N   alias-only NDATA with alias 99, which no birth binds, and Count -N
    quit

An NCMD arriving on the node's topic is decoded by pysparkplug and printed as
"ncmd NAME=VALUE"; a `Node Control/Rebirth` = true is answered as Sparkplug asks, with
NBIRTH and DBIRTH again (then "reborn" is printed). Prints "ready" once connected and
subscribed.
"""

import argparse
import datetime
import sys
import threading
import time

from pysparkplug import (
    Client,
    DataType,
    DBirth,
    DData,
    Message,
    MessageType,
    Metric,
    NBirth,
    NData,
    QoS,
    Topic,
    get_current_timestamp,
)

REBIRTH = "Node Control/Rebirth"


def epoch(seconds):
    """A DateTime value: pysparkplug encodes datetimes as epoch milliseconds."""
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def say(line):
    print(line, flush=True)


class Node:
    def __init__(self, args):
        self.args = args
        self.client = Client(client_id=f"peer-{args.node}-{args.port}")
        self.seq = 0
        self.bd_seq = 0
        self.lock = threading.Lock()
        self.connected = threading.Event()

    def topic(self, kind, device=None):
        return Topic(message_type=kind, group_id=self.args.group, edge_node_id=self.args.node, device_id=device)

    def next_seq(self):
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    def send(self, kind, payload, device=None, dtypes=False):
        message = Message(topic=self.topic(kind, device), payload=payload, qos=QoS.AT_LEAST_ONCE, retain=False)
        self.client.publish(message, include_dtypes=dtypes)

    def birth(self):
        with self.lock:
            self.seq = 0
            now = get_current_timestamp()
            node = (
                Metric(now, "bdSeq", DataType.INT64, value=self.bd_seq),
                Metric(now, "Temperature", DataType.FLOAT, value=20.25, alias=1),
                Metric(now, "Count", DataType.INT32, value=0, alias=2),
                Metric(now, "Serial", DataType.STRING, value="SN-0", alias=3),
                Metric(now, "Started", DataType.DATETIME, value=epoch(1_700_000_000), alias=4),
                Metric(now, REBIRTH, DataType.BOOLEAN, value=False, alias=5),
            )
            self.send(MessageType.NBIRTH, NBirth(now, self.next_seq(), node), dtypes=True)
            device = (Metric(now, "Speed", DataType.DOUBLE, value=0.0, alias=1),)
            self.send(MessageType.DBIRTH, DBirth(now, self.next_seq(), device), self.args.device, dtypes=True)

    def data(self, n):
        with self.lock:
            now = get_current_timestamp()
            # Alias only: no names, no datatypes, as edge nodes send DATA.
            node = (
                Metric(now, None, DataType.FLOAT, value=123.456, alias=1),
                Metric(now, None, DataType.INT32, value=-n, alias=2),
                Metric(now, None, DataType.STRING, value=f"SN-{n}", alias=3),
                Metric(now, None, DataType.DATETIME, value=epoch(1_700_000_000 + n), alias=4),
            )
            self.send(MessageType.NDATA, NData(now, self.next_seq(), node))
            device = (Metric(now, None, DataType.DOUBLE, value=1000.0 + n, alias=1),)
            self.send(MessageType.DDATA, DData(now, self.next_seq(), device), self.args.device)

    def unknown(self, n):
        with self.lock:
            now = get_current_timestamp()
            node = (
                Metric(now, None, DataType.DOUBLE, value=7.5, alias=99),
                Metric(now, None, DataType.INT32, value=-n, alias=2),
            )
            self.send(MessageType.NDATA, NData(now, self.next_seq(), node))

    def on_ncmd(self, _client, message):
        for metric in message.payload.metrics:
            say(f"ncmd {metric.name}={metric.value}")
            if metric.name == REBIRTH and metric.value is True:
                self.birth()
                say("reborn")

    def start(self):
        self.client.subscribe(self.topic(MessageType.NCMD), QoS.AT_LEAST_ONCE, self.on_ncmd)
        self.client.connect("127.0.0.1", port=self.args.port, blocking=False, callback=lambda _c: self.connected.set())
        if not self.connected.wait(10):
            sys.exit("no connection to the broker")
        # The subscription is sent on connect; give the broker a moment to take it.
        time.sleep(0.3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--group", default="plant1")
    parser.add_argument("--node", default="edge1")
    parser.add_argument("--device", default="pump")
    node = Node(parser.parse_args())
    node.start()
    say("ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, n = words[0], int(words[1]) if len(words) > 1 else 0
        if cmd == "quit":
            break
        {"birth": lambda _n: node.birth(), "data": node.data, "unknown": node.unknown}[cmd](n)
        # paho publishes from its network thread; wait until it has sent everything.
        time.sleep(0.2)
        say(f"done {cmd}")
    node.client.disconnect()


if __name__ == "__main__":
    main()
