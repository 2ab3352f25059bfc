"""A Modbus TCP server for the integration tests, built on pymodbus (an implementation this
project did not write). Register contents are encoded here with Python's struct module, so the
gateway's decoding is checked against an independent encoder.

Usage: modbus_server.py --port PORT --spec JSON

The spec is {"registers": [{"table": "holding"|"input", "address": N, "type": "u16"|"i16"|
"u32"|"i32"|"f32"|"u64"|"i64"|"f64"|"string", "order": "ABCD"|"CDAB"|"BADC"|"DCBA",
"value": V, "length": registers (strings)}, ...],
"coils": {"N": true, ...}, "discrete_inputs": {"N": false, ...}, "blocks": [{"table", "address",
"words": [raw registers]}], "size": N}. Register tables hold addresses 0..size-1 (default 200);
reading beyond answers exception 02 (illegal data address).
"""

import argparse
import asyncio
import json
import sys
import struct

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SIZE = 200
FORMATS = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f",
           "u64": ">Q", "i64": ">q", "f64": ">d"}


def wire_bytes(big_endian: bytes, order: str) -> bytes:
    """Reorders big-endian bytes into the order they travel on the wire: ABCD as is, DCBA
    reversed, BADC with the bytes of each register swapped, CDAB with the registers reversed."""
    words = [big_endian[i : i + 2] for i in range(0, len(big_endian), 2)]
    if order == "ABCD":
        out = words
    elif order == "DCBA":
        out = [w[::-1] for w in reversed(words)]
    elif order == "BADC":
        out = [w[::-1] for w in words]
    elif order == "CDAB":
        out = list(reversed(words))
    else:
        raise ValueError(order)
    return b"".join(out)


def encode(entry) -> list[int]:
    value = entry["value"]
    if entry["type"] == "string":
        data = value.encode("ascii").ljust(2 * entry["length"], b"\0")
        if entry.get("order", "ABCD") in ("BADC", "DCBA"):
            data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if entry["type"] not in ("f32", "f64"):
        value = int(value)
    raw = struct.pack(FORMATS[entry["type"]], value)
    data = wire_bytes(raw, entry.get("order", "ABCD"))
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def build_slave(spec) -> ModbusSlaveContext:
    size = spec.get("size", SIZE)
    tables = {"holding": [0] * size, "input": [0] * size}
    for block in spec.get("blocks", []):
        # Raw register values, e.g. a buffered waveform: {"table", "address", "words": [...]}.
        for i, word in enumerate(block["words"]):
            tables[block["table"]][block["address"] + i] = word & 0xFFFF
    for entry in spec.get("registers", []):
        words = encode(entry)
        table = tables[entry["table"]]
        for i, word in enumerate(words):
            table[entry["address"] + i] = word
    coils = [False] * SIZE
    for address, value in spec.get("coils", {}).items():
        coils[int(address)] = bool(value)
    discrete = [False] * SIZE
    for address, value in spec.get("discrete_inputs", {}).items():
        discrete[int(address)] = bool(value)
    # pymodbus 3.8 adds 1 to every protocol address, so blocks start at 1 to map
    # protocol address N to list index N.
    slave = ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(1, tables["holding"]),
        ir=ModbusSequentialDataBlock(1, tables["input"]),
        co=ModbusSequentialDataBlock(1, coils),
        di=ModbusSequentialDataBlock(1, discrete),
    )
    return slave


def build_context(spec) -> ModbusServerContext:
    return ModbusServerContext(slaves=build_slave(spec), single=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--serial", help="serial device: serve Modbus RTU instead of TCP")
    parser.add_argument("--line", default="19200,N,8,2", help="baud,parity,data bits,stop bits")
    parser.add_argument("--spec", default="{}", help="register spec; with --serial, {unit id: spec}")
    args = parser.parse_args()
    if args.serial:
        units = {int(unit): build_slave(spec) for unit, spec in json.loads(args.spec).items()}
        context = ModbusServerContext(slaves=units, single=False)
        baud, parity, bits, stop = args.line.split(",")
        server = ModbusSerialServer(
            context=context, framer=FramerType.RTU, port=args.serial,
            baudrate=int(baud), bytesize=int(bits), parity=parity, stopbits=int(stop),
        )
        if not await server.listen():
            sys.exit(f"cannot open {args.serial}")
        # The test harness waits for this line: the line is open and requests are served.
        print("ready", flush=True)
        await server.serving
    else:
        context = build_context(json.loads(args.spec))
        server = ModbusTcpServer(context=context, address=("127.0.0.1", args.port))
        # pymodbus only logs a failed bind and serves nothing; exit, so that the test harness
        # sees it and takes another port.
        if not await server.listen():
            sys.exit(f"cannot listen on 127.0.0.1:{args.port}: address in use or refused")
        await server.serving


if __name__ == "__main__":
    asyncio.run(main())
