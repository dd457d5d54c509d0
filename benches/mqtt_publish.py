"""Publishes every line of a file as one MQTT message, as fast as the broker takes them.

mosquitto_pub -l sends QoS 1 messages about one round trip at a time; this keeps up to
1000 in flight, so both consumers of benches/mqtt_ingest.sh see the same fast stream.
usage: mqtt_publish.py PORT QOS TOPIC FILE
"""
import sys
import time

import paho.mqtt.client as mqtt

port, qos, topic, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{qos}", protocol=mqtt.MQTTv311)
client.max_inflight_messages_set(1000)
client.connect("127.0.0.1", port)
client.loop_start()
while not client.is_connected():
    time.sleep(0.01)
last = None
with open(path) as f:
    for line in f:
        last = client.publish(topic, line.rstrip("\n"), qos=qos)
        # At most 65,535 QoS 1 messages can wait for an id: wait for room, then retry.
        while last.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            last = client.publish(topic, line.rstrip("\n"), qos=qos)
if last is not None:
    last.wait_for_publish(timeout=600)
client.loop_stop()
client.disconnect()
