"""A Sparkplug B primary host for the tests, built on pysparkplug (its payload classes and the
official protobuf schema it ships) and paho-mqtt.

Usage: sparkplug_host.py --port P --group G [--host-id H]

Subscribes to spBv1.0/<group>/# (and STATE/<host>), and prints one JSON line per message,
decoded by pysparkplug (aliases resolved from the node's births, as a host does):

  {"topic": ..., "type": "NBIRTH", "device": null, "seq": 0, "timestamp": ...,
   "metrics": [{"name", "alias", "datatype", "value", "is_null", "properties": {...}}],
   "hex": "<the raw payload>"}

Properties (which pysparkplug's Metric leaves out) come from the same protobuf schema. A
payload pysparkplug cannot decode is printed with "error". It prints {"ready": true} once
subscribed, then reads JSON commands from stdin, one per line:

  {"cmd": "state", "online": true}            STATE/<host>, retained, QoS 1 (3.0 JSON)
  {"cmd": "rebirth", "edge": E}               NCMD Node Control/Rebirth = true
  {"cmd": "dcmd", "edge": E, "device": D, "metrics": [{"name", "datatype", "value"}]}
  {"cmd": "raw", "topic": T, "hex": H}        any bytes on any topic
"""

import argparse
import json
import sys
import threading

import paho.mqtt.client as mqtt
import pysparkplug as sp
from pysparkplug import _datatype
from pysparkplug._protobuf import Payload as PBPayload


# pysparkplug 0.6.1 refuses Int8, Int16 and Int32 values sign-extended to the 32 bits of
# int_value, as Eclipse Tahu (the reference implementation) and Ignition write them
# (pysparkplug issue #26). Decode them as its pull request #32 does: the type's width, then
# the sign.
def _int_decoder(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


_datatype._int_decoder = _int_decoder

DECODERS = {
    "NBIRTH": sp.NBirth,
    "DBIRTH": sp.DBirth,
    "NDATA": sp.NData,
    "DDATA": sp.DData,
    "NDEATH": sp.NDeath,
    "DDEATH": sp.DDeath,
    "NCMD": sp.NCmd,
    "DCMD": sp.DCmd,
}

births = {}
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def properties(pb_metric):
    out = {}
    for key, value in zip(pb_metric.properties.keys, pb_metric.properties.values):
        field = value.WhichOneof("value")
        out[key] = getattr(value, field) if field else None
    return out


def on_message(client, userdata, msg):
    parts = msg.topic.split("/")
    record = {"topic": msg.topic, "hex": msg.payload.hex(), "retain": msg.retain}
    if parts[1] == "STATE":
        record["type"] = "STATE"
        emit(record)
        return
    kind = parts[2]
    edge = parts[3]
    device = parts[4] if len(parts) > 4 else None
    record.update({"type": kind, "edge": edge, "device": device})
    key = (edge, device)
    try:
        decoder = DECODERS[kind]
        if kind in ("NBIRTH", "DBIRTH"):
            payload = decoder.decode(msg.payload)
            births[key] = payload
        elif kind in ("NDEATH", "DDEATH"):
            payload = decoder.decode(msg.payload)
        else:
            payload = decoder.decode(msg.payload, birth=births.get(key))
        raw = PBPayload.FromString(msg.payload)
        record["timestamp"] = raw.timestamp if raw.HasField("timestamp") else None
        record["seq"] = raw.seq if raw.HasField("seq") else None
        metrics = []
        pb_metrics = list(raw.metrics)
        decoded = getattr(payload, "metrics", None)
        if decoded is None:
            decoded = [payload.bd_seq_metric] if kind == "NDEATH" else []
        for m, pb in zip(decoded, pb_metrics):
            metrics.append(
                {
                    "name": m.name,
                    "alias": m.alias,
                    "datatype": int(m.datatype),
                    "value": jsonable(m.value),
                    "is_null": m.is_null,
                    "properties": properties(pb),
                }
            )
        record["metrics"] = metrics
    except Exception as e:  # a payload the reference decoder refuses
        record["error"] = repr(e)
    emit(record)


def command(client, args, line):
    c = json.loads(line)
    ts = sp.get_current_timestamp()
    if c["cmd"] == "state":
        body = json.dumps({"online": c["online"], "timestamp": ts})
        client.publish(f"spBv1.0/STATE/{args.host_id}", body, qos=1, retain=True)
    elif c["cmd"] == "rebirth":
        metric = sp.Metric(
            timestamp=ts, name="Node Control/Rebirth", datatype=sp.DataType.BOOLEAN, value=True
        )
        payload = sp.NCmd(timestamp=ts, metrics=(metric,))
        client.publish(
            f"spBv1.0/{args.group}/NCMD/{c['edge']}", payload.encode(include_dtypes=True), qos=0
        )
    elif c["cmd"] == "dcmd":
        metrics = tuple(
            sp.Metric(
                timestamp=ts,
                name=m["name"],
                datatype=sp.DataType[m["datatype"]],
                value=m["value"],
            )
            for m in c["metrics"]
        )
        payload = sp.DCmd(timestamp=ts, metrics=metrics)
        client.publish(
            f"spBv1.0/{args.group}/DCMD/{c['edge']}/{c['device']}",
            payload.encode(include_dtypes=True),
            qos=0,
        )
    elif c["cmd"] == "raw":
        client.publish(c["topic"], bytes.fromhex(c["hex"]), qos=0)
    emit({"done": c["cmd"]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--host-id")
    args = ap.parse_args()
    client = mqtt.Client(client_id=f"sparkplug-host-{args.port}", clean_session=True)
    subscribed = threading.Event()

    def on_connect(c, userdata, flags, rc):
        c.subscribe([(f"spBv1.0/{args.group}/#", 1)])

    def on_subscribe(c, userdata, mid, granted):
        emit({"ready": True})
        subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    for line in sys.stdin:
        if line.strip():
            command(client, args, line)
    client.loop_stop()


if __name__ == "__main__":
    main()
