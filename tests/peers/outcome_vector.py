"""An independent encoder of outcome packets v1, v2 and v3 (README, "Outcome packets"), used to
produce and re-check the golden vectors in tests/vectors/outcome_v1.json, outcome_v2.json and
outcome_v3.json (a vector's "version", default 1; v2 adds "relative": {"ratio": r} or null; v3
adds, last, the fingerprints of the context's class, process and mounting levels, unless the
vector says "levels": false). It also prints each vector's "topic" (a v3 packet's ends with its
source and pattern id). It shares no code with the
gateway: postcard varints, little-endian floats and the signing rule are written out here from
the specification, and signatures come from the `cryptography` package's Ed25519.

Usage: outcome_vector.py VECTORS.json   -> prints the vectors with "body_hex", "signature_hex",
                                           "packet_hex" and "source_hex" filled in.
"""

import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DOMAINS = {1: b"qis/outcome/v1\x00", 2: b"qis/outcome/v2\x00", 3: b"qis/outcome/v3\x00"}
# The standard keys of each general level, from the most general: class, process, mounting.
LEVEL_KEYS = [("equipment_class",), ("equipment_class", "process"),
              ("equipment_class", "process", "sensor_kind", "mounting")]
FEATURES = ["band_amplitude", "harmonic", "bearing_defect", "velocity_rms", "acceleration_rms",
            "kurtosis", "crest_factor", "spc_rule", "process_value"]
DEFECTS = ["bpfo", "bpfi", "bsf", "ftf"]
CHARTS = ["xbar_r", "xbar_s", "imr", "cusum", "ewma"]
RULE_SETS = ["western_electric", "nelson"]
DIRECTIONS = ["high", "low"]
OUTCOMES = ["failure_confirmed", "defect_confirmed", "false_alarm"]
FAILURE_MODES = ["none", "bearing_outer_race", "bearing_inner_race", "bearing_ball", "bearing_cage",
                 "imbalance", "misalignment", "looseness", "lubrication", "cavitation", "electrical",
                 "tool_wear", "process_shift", "other"]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def text(s: str) -> bytes:
    data = s.encode("utf-8")
    return varint(len(data)) + data


def f32(x: float) -> bytes:
    return struct.pack("<f", x)


def canonical(context, keys=None) -> str:
    """The canonical text of the whole context, or of the standard `keys` alone (a level)."""
    def value(v):
        return " ".join(v.split()).lower()

    def key(k):
        return "_".join(k.split()).lower()

    pairs = {k: value(context[k]) for k in ("equipment_class", "process", "sensor_kind", "mounting")}
    for k, v in context.get("attributes", {}).items():
        pairs[key(k)] = value(v)
    if keys is not None:
        pairs = {k: v for k, v in pairs.items() if k in keys}
    return "qis-context-v1\n" + "".join(f"{k}={pairs[k]}\n" for k in sorted(pairs))


def feature(f) -> bytes:
    kind = f["kind"]
    out = varint(FEATURES.index(kind))
    if kind == "harmonic":
        out += bytes([f["order"]])
    elif kind == "bearing_defect":
        out += varint(DEFECTS.index(f["defect"]))
    elif kind == "spc_rule":
        out += varint(CHARTS.index(f["chart"])) + varint(RULE_SETS.index(f["rules"])) + bytes([f["rule"]])
    return out


def frequency(f) -> bytes:
    if f is None:
        return varint(0)
    if "at_hz" in f:
        return varint(1) + f32(f["at_hz"])
    lo, hi = f["band_hz"]
    return varint(2) + f32(lo) + f32(hi)


def relative(r) -> bytes:
    if r is None:
        return varint(0)
    return varint(1) + f32(r["ratio"])


def fingerprint(context, keys=None) -> bytes:
    return hashlib.sha256(canonical(context, keys).encode("utf-8")).digest()[:16]


def levels(v) -> bytes:
    if v.get("levels", True) is False:
        return varint(0)
    return varint(1) + b"".join(fingerprint(v["context"], keys) for keys in LEVEL_KEYS)


def pattern_id(p) -> str:
    """SHA-256 over the encoded feature, frequency, unit and direction: the first 8 bytes, hex."""
    encoded = feature(p["feature"]) + frequency(p.get("frequency")) + text(p["unit"]) + \
        varint(DIRECTIONS.index(p["direction"]))
    return hashlib.sha256(encoded).hexdigest()[:16]


def topic(v, source: bytes) -> str:
    full = fingerprint(v["context"]).hex()
    if v.get("version", 1) < 3 or v.get("levels", True) is False:
        return "qis/v1/ctx/" + full
    levels_ = "/".join(fingerprint(v["context"], k).hex() for k in LEVEL_KEYS)
    return f"qis/v2/ctx/{levels_}/{full}/{source.hex()}/{pattern_id(v['pattern'])}"


def body(v, source: bytes) -> bytes:
    fingerprint_ = fingerprint(v["context"])
    p, o = v["pattern"], v["outcome"]
    version = v.get("version", 1)
    return b"".join([
        bytes([version]),
        fingerprint_,
        feature(p["feature"]), frequency(p.get("frequency")), f32(p["threshold"]), text(p["unit"]),
        varint(DIRECTIONS.index(p["direction"])),
        varint(OUTCOMES.index(o["kind"])), varint(FAILURE_MODES.index(o["failure_mode"])), text(o["label"]),
        f32(v["confidence"]),
        varint(v["validations"]), varint(v["refutations"]), varint(v["lead_time_s"]),
        varint(v["issued_at"]), varint(v["ttl_s"]), varint(v["seq"]),
        source,
        text(v["equipment_label"]),
        relative(v.get("relative")) if version >= 2 else b"",
        levels(v) if version >= 3 else b"",
    ])


def main() -> None:
    vectors = json.load(open(sys.argv[1], encoding="utf-8"))
    for v in vectors:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["seed_hex"]))
        source = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        b = body(v, source)
        signature = key.sign(DOMAINS[v.get("version", 1)] + b)
        v["fingerprint_hex"] = hashlib.sha256(canonical(v["context"]).encode("utf-8")).hexdigest()[:32]
        v["topic"] = topic(v, source)
        v["source_hex"] = source.hex()
        v["body_hex"] = b.hex()
        v["signature_hex"] = signature.hex()
        v["packet_hex"] = (b + signature).hex()
    json.dump(vectors, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
