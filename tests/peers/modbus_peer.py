#!/usr/bin/env python3
"""A Modbus device for forewarn's interop tests, built on pymodbus: an implementation
independent of the agent's, on TCP or on a serial port (RTU).

The register map is JSON: values with their type and byte order, encoded here with
Python's struct module from the written definitions of the orders (not from the agent's
code), so a decoding mistake in the agent cannot cancel out against the same mistake in
the encoder. Addresses that the map does not fill answer exception 02 (illegal data
address); "exceptions" entries make an address answer another code.

    modbus_peer.py --map MAP.json --tcp PORT [--unit N ...]
    modbus_peer.py --map MAP.json --serial /dev/pts/N [--unit N ...]
    modbus_peer.py --silent --tcp PORT        accepts connections, never answers

Prints "ready" on stdout once it serves.

Map: {"values": [{"table": "holding", "address": 0, "type": "f32", "order": "CDAB",
                  "value": 1.5, "bit": 3, "length": 4}, ...],
      "exceptions": [{"table": "holding", "address": 300, "code": 4}, ...]}
"""

import argparse
import asyncio
import json
import struct
import sys

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.datastore.context import ModbusBaseDeviceContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

FORMATS = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q", "f32": "f", "f64": "d"}
TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def reorder(data: bytes, order: str) -> bytes:
    """Lays out big-endian bytes ABCD... in the named order."""
    pairs = [data[i:i + 2] for i in range(0, len(data), 2)]
    if order == "ABCD":
        return data
    if order == "DCBA":
        return data[::-1]
    if order == "BADC":
        return b"".join(p[::-1] for p in pairs)
    if order == "CDAB":
        return b"".join(reversed(pairs))
    raise ValueError(order)


def encode(entry):
    """The registers (or bits) of one map entry, as {address: value}."""
    kind, address, typ = entry["table"], entry["address"], entry["type"]
    if typ == "bool":
        return {address: bool(entry["value"])}
    if typ == "string":
        raw = entry["value"].encode("ascii").ljust(2 * entry["length"], b"\0")
        if entry.get("order", "ABCD") == "BADC":
            raw = reorder(raw, "BADC")
        return {address + i: int.from_bytes(raw[2 * i:2 * i + 2], "big") for i in range(entry["length"])}
    if typ == "bit":
        return {address: (1 << entry["bit"]) if entry["value"] else 0}
    raw = reorder(struct.pack(">" + FORMATS[typ], entry["value"]), entry.get("order", "ABCD"))
    return {address + i // 2: int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)}


class MapContext(ModbusBaseDeviceContext):
    """The four tables as dictionaries; anything not in them is an illegal address."""

    def __init__(self, spec):
        self.tables = {name: {} for name in TABLES.values()}
        for entry in spec.get("values", []):
            table = self.tables[entry["table"]]
            for address, value in encode(entry).items():
                if entry["type"] == "bit":
                    # Several bits may share one register.
                    table[address] = table.get(address, 0) | value
                else:
                    table[address] = value
        self.exceptions = {(e["table"], e["address"]): e["code"] for e in spec.get("exceptions", [])}

    def reset(self):
        pass

    def getValues(self, func_code, address, count=1):
        table_name = TABLES.get(func_code)
        if table_name is None:
            return ExcCodes.ILLEGAL_FUNCTION
        for a in range(address, address + count):
            code = self.exceptions.get((table_name, a))
            if code is not None:
                return ExcCodes(code)
        table = self.tables[table_name]
        if any(a not in table for a in range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        return [table[a] for a in range(address, address + count)]

    def setValues(self, func_code, address, values):
        return ExcCodes.ILLEGAL_FUNCTION


async def silent(port):
    async def swallow(reader, writer):
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--map")
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--serial")
    parser.add_argument("--baud", type=int, default=19200)
    # Linux pseudo-terminals refuse parity settings: tests over socat use "N".
    parser.add_argument("--parity", default="N", choices=["N", "E", "O"])
    parser.add_argument("--unit", type=int, action="append")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()
    if args.silent:
        await silent(args.tcp)
        return
    with open(args.map, encoding="utf-8") as f:
        spec = json.load(f)
    units = args.unit or [1]
    context = ModbusServerContext(devices={u: MapContext(spec) for u in units}, single=False)
    if args.serial:
        server = ModbusSerialServer(context, port=args.serial, baudrate=args.baud, parity=args.parity,
                                    ignore_missing_devices=True)
    else:
        server = ModbusTcpServer(context, address=("127.0.0.1", args.tcp))
    await server.serve_forever(background=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
