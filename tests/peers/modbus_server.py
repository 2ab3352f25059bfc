"""A Modbus TCP server for the integration tests, built on pymodbus (an implementation this
project did not write). Register contents are encoded here with Python's struct module, so the
gateway's decoding is checked against an independent encoder.

Usage: modbus_server.py --port PORT --spec JSON

The spec is {"registers": [{"table": "holding"|"input", "address": N, "type": "u16"|"i16"|
"u32"|"i32"|"f32", "order": "ABCD"|"CDAB"|"BADC"|"DCBA", "value": V}, ...],
"coils": {"N": true, ...}, "discrete_inputs": {"N": false, ...}}. Every table holds addresses
0..199; reading beyond answers exception 02 (illegal data address).
"""

import argparse
import asyncio
import json
import struct

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncTcpServer

SIZE = 200
FORMATS = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f"}


def wire_bytes(big_endian: bytes, order: str) -> bytes:
    """Reorders big-endian bytes A B C D into the order they travel on the wire."""
    positions = {"ABCD": "ABCD", "CDAB": "CDAB", "BADC": "BADC", "DCBA": "DCBA"}[order]
    if len(big_endian) == 2:
        return big_endian if order in ("ABCD", "CDAB") else big_endian[::-1]
    index = {letter: i for i, letter in enumerate("ABCD")}
    return bytes(big_endian[index[letter]] for letter in positions)


def encode(entry) -> list[int]:
    value = entry["value"]
    if entry["type"] != "f32":
        value = int(value)
    raw = struct.pack(FORMATS[entry["type"]], value)
    data = wire_bytes(raw, entry.get("order", "ABCD"))
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def build_context(spec) -> ModbusServerContext:
    tables = {"holding": [0] * SIZE, "input": [0] * SIZE}
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
    return ModbusServerContext(slaves=slave, single=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", default="{}")
    args = parser.parse_args()
    context = build_context(json.loads(args.spec))
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", args.port))


if __name__ == "__main__":
    asyncio.run(main())
