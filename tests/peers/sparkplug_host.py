#!/usr/bin/env python3
"""A Sparkplug B host application for forewarn's forwarding tests, built on pysparkplug:
the agent's messages are decoded by an implementation independent of the agent's.

    sparkplug_host.py --port PORT [--host scada]

Subscribes to spBv1.0/# and prints every NBIRTH, DBIRTH, NDATA, DDATA and NDEATH as one
JSON line, aliases resolved through the births as a host does:

    {"type": "DDATA", "group": ..., "node": ..., "device": ..., "seq": 3, "timestamp": ...,
     "metrics": [{"name": ..., "alias": ..., "datatype": 10, "value": 21.5,
                  "timestamp": ..., "is_historical": false, "is_null": false}]}

Commands, one per line on stdin; each prints "done CMD" once published:

    online TS             retained STATE {"online": true, "timestamp": TS} of the host
    offline TS            the same with "online": false
    rebirth GROUP NODE    NCMD with Node Control/Rebirth = true
    quit

Prints "ready" once connected and subscribed.
"""

import argparse
import json
import sys
import threading
import time

from paho.mqtt import client as paho_mqtt
from pysparkplug import DataType, Message, MessageType, Metric, NCmd, get_current_timestamp
from pysparkplug._payload import Birth

REBIRTH = "Node Control/Rebirth"
DECODED = {MessageType.NBIRTH, MessageType.DBIRTH, MessageType.NDATA, MessageType.DDATA, MessageType.NDEATH}


def say(line):
    print(line, flush=True)


def metric_json(m):
    value = m.value
    if isinstance(value, (bytes, bytearray)):
        value = value.hex()
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        value = str(value)
    return {
        "name": m.name,
        "alias": m.alias,
        "datatype": int(m.datatype),
        "value": value,
        "timestamp": m.timestamp,
        "is_historical": m.is_historical,
        "is_null": m.is_null,
    }


class Host:
    def __init__(self, args):
        self.args = args
        self.births = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client_id = f"host-{args.port}"
        try:
            # paho 2 asks which callback signatures are meant; paho 1 (pysparkplug's own) has only these.
            self.client = paho_mqtt.Client(paho_mqtt.CallbackAPIVersion.VERSION1, client_id=client_id)
        except AttributeError:
            self.client = paho_mqtt.Client(client_id=client_id)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self.on_message

    def on_connect(self, client, *_rest):
        client.subscribe("spBv1.0/#", qos=1)

    def on_message(self, _client, _userdata, mqtt_message):
        parts = mqtt_message.topic.split("/")
        if len(parts) < 4 or parts[2] not in {t.value for t in DECODED}:
            return
        group, kind, node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else None
        key = (group, node, device)
        with self.lock:
            try:
                message = Message.from_mqtt_message(mqtt_message, birth=self.births.get(key))
            except Exception as e:  # an undecodable message is reported, not fatal
                say(json.dumps({"type": "error", "topic": mqtt_message.topic, "error": repr(e)}))
                return
            payload = message.payload
            if isinstance(payload, Birth):
                self.births[key] = payload
            if kind == MessageType.NDEATH:
                metrics = [metric_json(payload.bd_seq_metric)]
            else:
                metrics = [metric_json(m) for m in payload.metrics]
            say(
                json.dumps(
                    {
                        "type": kind,
                        "group": group,
                        "node": node,
                        "device": device,
                        "seq": getattr(payload, "seq", None),
                        "timestamp": payload.timestamp,
                        "metrics": metrics,
                    }
                )
            )

    def state(self, online, ts):
        body = json.dumps({"online": online, "timestamp": ts})
        info = self.client.publish(f"spBv1.0/STATE/{self.args.host}", body, qos=1, retain=True)
        info.wait_for_publish(5)

    def rebirth(self, group, node):
        now = get_current_timestamp()
        payload = NCmd(now, (Metric(now, REBIRTH, DataType.BOOLEAN, value=True),))
        info = self.client.publish(f"spBv1.0/{group}/NCMD/{node}", payload.encode(include_dtypes=True), qos=0)
        info.wait_for_publish(5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="scada")
    host = Host(parser.parse_args())
    host.client.connect("127.0.0.1", host.args.port)
    host.client.loop_start()
    if not host.subscribed.wait(10):
        sys.exit("no subscription at the broker")
    say("ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "quit":
            break
        if cmd in ("online", "offline"):
            host.state(cmd == "online", int(words[1]))
        elif cmd == "rebirth":
            host.rebirth(words[1], words[2])
        time.sleep(0.1)
        say(f"done {cmd}")
    host.client.loop_stop()
    host.client.disconnect()


if __name__ == "__main__":
    main()
