// Reads hex-encoded Sparkplug B payloads, one per line, from stdin and prints each decoded by
// sparkplug-payload (Eclipse Tahu's JavaScript decoder) as one JSON line: 64-bit integers as
// numbers, bytes as hex; a payload it refuses as {"error": ...}.
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const readline = require("readline");

function plain(v) {
  if (v === null || v === undefined) return v;
  if (typeof v === "object" && typeof v.toNumber === "function") return v.toNumber();
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x);
    return out;
  }
  return v;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  line = line.trim();
  if (!line) return;
  try {
    const payload = sparkplug.decodePayload(Buffer.from(line, "hex"));
    process.stdout.write(JSON.stringify(plain(payload)) + "\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e) }) + "\n");
  }
});
