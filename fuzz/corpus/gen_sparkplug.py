"""Regenerates corpus/sparkplug/*.bin from Tahu's sparkplug_b.proto.

Needs a Python module compiled from the official proto, e.g.
  python -m grpc_tools.protoc -I<dir of sparkplug_b.proto> --python_out=. sparkplug_b.proto
so the corpus is encoded independently of the Rust structs under test.
Run from corpus/: python gen_sparkplug.py
"""
import json
import pathlib

import sparkplug_b_pb2 as sp

Payload = sp.Payload
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = 1, 2, 3, 4, 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME = 9, 10, 11, 12, 13
DATASET, TEMPLATE = 16, 19
T0 = 1_700_000_000_000


def metric(p, name=None, alias=None, dt=None, ts=None, **value):
    m = p.metrics.add()
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    if dt is not None:
        m.datatype = dt
    if ts is not None:
        m.timestamp = ts
    for k, v in value.items():
        setattr(m, k, v)
    return m


def eng_unit(m, unit):
    m.properties.keys.append("engUnit")
    pv = m.properties.values.add()
    pv.type = STRING
    pv.string_value = unit


def nbirth():
    p = Payload(timestamp=T0, seq=0)
    metric(p, "bdSeq", dt=UINT64, long_value=0)
    metric(p, "Node Control/Rebirth", 1, BOOLEAN, boolean_value=False)
    metric(p, "Node Control/Next Server", 2, BOOLEAN, boolean_value=False)
    metric(p, "Properties/Hardware Make", 3, STRING, string_value="Raspberry Pi")
    eng_unit(metric(p, "Node Info/CPU Temp", 4, FLOAT, float_value=48.3), "degC")
    metric(p, "Node Info/Uptime", 5, UINT32, int_value=86400)
    metric(p, "Node Info/Boot Time", 6, DATETIME, long_value=T0 - 86_400_000)
    ds = metric(p, "Node Info/Interfaces", 7, DATASET).dataset_value
    ds.num_of_columns = 2
    ds.columns.extend(["name", "rx_bytes"])
    ds.types.extend([STRING, UINT64])
    for name, rx in [("eth0", 123456789), ("wlan0", 42)]:
        row = ds.rows.add()
        row.elements.add().string_value = name
        row.elements.add().long_value = rx
    return p


def dbirth_pump():
    p = Payload(timestamp=T0 + 10, seq=1)
    eng_unit(metric(p, "Pump/Speed", 10, FLOAT, float_value=1450.0), "rpm")
    metric(p, "Pump/Running", 11, BOOLEAN, boolean_value=True)
    metric(p, "Pump/Pressure", 12, DOUBLE, double_value=3.25)
    # Sign-extended to 32 bits, as the Java reference implementation writes Int16.
    metric(p, "Pump/Fault Code", 13, INT16, int_value=0xFFFFFFFF)
    metric(p, "Pump/Serial", 14, STRING, string_value="P-0042")
    metric(p, "Pump/Cycle Count", 15, UINT64, long_value=982734)
    return p


def dbirth_tank():
    p = Payload(timestamp=T0 + 20, seq=2)
    metric(p, "Tank/Level", 20, DOUBLE, double_value=72.4)
    # Only the low 8 bits, as some C encoders write Int8.
    metric(p, "Tank/Temperature", 21, INT8, int_value=0xF4)
    tpl = metric(p, "Tank/Recipe", 22, TEMPLATE).template_value
    tpl.template_ref = "Recipe"
    tpl.is_definition = False
    m = tpl.metrics.add()
    m.name, m.datatype, m.int_value = "Batch", INT32, 7
    metric(p, "Tank/Setpoint", 23, FLOAT, is_null=True)
    return p


def ddata_pump():
    p = Payload(timestamp=T0 + 1000, seq=3)
    metric(p, alias=10, ts=T0 + 990, float_value=1462.5)
    metric(p, alias=12, ts=T0 + 995, double_value=3.31)
    metric(p, alias=13, int_value=0xFFFFFFFD)
    return p


def ndata():
    p = Payload(timestamp=T0 + 2000, seq=4)
    metric(p, alias=4, float_value=49.1)
    metric(p, alias=5, int_value=86402)
    return p


def ddata_tank():
    p = Payload(timestamp=T0 + 3000, seq=5)
    metric(p, alias=20, double_value=71.9)
    metric(p, alias=21, int_value=0xF3)
    old = metric(p, alias=20, ts=T0 - 60_000, double_value=75.0)
    old.is_historical = True
    return p


def ddeath_tank():
    return Payload(timestamp=T0 + 4000, seq=6)


def ncmd():
    p = Payload(timestamp=T0 + 5000)
    metric(p, "Node Control/Rebirth", dt=BOOLEAN, boolean_value=True)
    return p


def ndeath():
    p = Payload(timestamp=T0 + 6000)
    metric(p, "bdSeq", dt=UINT64, long_value=0)
    return p


MESSAGES = [
    ("spBv1.0/plant1/NBIRTH/edge1", nbirth, 5),
    ("spBv1.0/plant1/DBIRTH/edge1/pump1", dbirth_pump, 5),
    ("spBv1.0/plant1/DBIRTH/edge1/tank1", dbirth_tank, 2),
    ("spBv1.0/plant1/DDATA/edge1/pump1", ddata_pump, 3),
    ("spBv1.0/plant1/NDATA/edge1", ndata, 2),
    ("spBv1.0/plant1/DDATA/edge1/tank1", ddata_tank, 3),
    ("spBv1.0/plant1/DDEATH/edge1/tank1", ddeath_tank, 0),
    ("spBv1.0/plant1/NCMD/edge1", ncmd, 0),
    ("spBv1.0/plant1/NDEATH/edge1", ndeath, 0),
    ("spBv1.0/STATE/scada1", None, 0),
]

if __name__ == "__main__":
    out = pathlib.Path("sparkplug")
    out.mkdir(exist_ok=True)
    for topic, build, count in MESSAGES:
        if build is None:
            data = json.dumps({"online": True, "timestamp": T0}).encode()
        else:
            data = build().SerializeToString()
        (out / (topic.replace("/", "__") + ".bin")).write_bytes(data)
        print(f"sparkplug/{topic.replace('/', '__')}.bin {count}")
