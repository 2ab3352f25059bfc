"""qis-edge beside Node-RED 4 with node-red-contrib-modbus on the same work, side by side in
alternating rounds: 10 Modbus TCP devices (pymodbus) of 100 holding registers each, polled
every 100 ms, every value published to the same mosquitto as JSON on its own topic (1 000 tags,
10 000 messages a second). Per side and round: CPU seconds per wall second and resident memory
of the process, and the messages the broker delivered (to check both did the same work).

    ./tests/run.sh --no-run          # the test peers: mosquitto, .venv with pymodbus
    cargo build --release
    .venv/bin/python benches/nodered.py [--rounds 3] [--seconds 20]

Node-RED (node-red@4 and node-red-contrib-modbus@5.23.3) is installed with npm into a temporary
folder; Node-RED 5 needs a newer Node.js than Debian's. Nothing here is part of the test suite.
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DEVICES = 10
POINTS = 100
POLL_MS = 100
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, what, deadline_s=60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gateway_config(tmp, mqtt, plcs):
    text = (
        f'[site]\nid = "bench"\nstate_dir = "{tmp}/gw-state"\n\n[mqtt]\nport = {mqtt}\n\n'
        "[metrics]\nmin_interval_ms = 0\nmax_interval_ms = 0\n\n"
    )
    for d, port in enumerate(plcs):
        text += (
            f'[[devices]]\ntype = "modbus_tcp"\nname = "d{d}"\nhost = "127.0.0.1"\nport = {port}\n'
            f"poll_interval_ms = {POLL_MS}\n\n"
        )
        for p in range(POINTS):
            text += f'[[devices.points]]\nname = "p{p}"\nregister = "holding"\naddress = {p}\n\n'
    path = pathlib.Path(tmp) / "qis-edge.toml"
    path.write_text(text)
    return path


def nodered_flows(mqtt, plcs):
    """One modbus-read per device, a function node making one message per register, one
    mqtt out: what a Node-RED user builds for the same job."""
    flows = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {"id": "broker", "type": "mqtt-broker", "name": "local", "broker": "127.0.0.1",
         "port": str(mqtt), "clientid": "", "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "60", "cleansession": True},
        {"id": "out", "type": "mqtt out", "z": "tab", "name": "", "topic": "", "qos": "0",
         "retain": "false", "broker": "broker", "wires": []},
    ]
    for d, port in enumerate(plcs):
        flows += [
            {"id": f"client{d}", "type": "modbus-client", "name": f"d{d}", "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
             "failureLogEnabled": False, "tcpHost": "127.0.0.1", "tcpPort": str(port),
             "tcpType": "DEFAULT", "unit_id": "1", "commandDelay": "1", "clientTimeout": "1000",
             "reconnectOnTimeout": True, "reconnectTimeout": "2000",
             "parallelUnitIdsAllowed": True},
            {"id": f"read{d}", "type": "modbus-read", "z": "tab", "name": f"d{d}", "topic": "",
             "showStatusActivities": False, "logIOActivities": False, "showErrors": False,
             "unitid": "1", "dataType": "HoldingRegister", "adr": "0", "quantity": str(POINTS),
             "rate": str(POLL_MS), "rateUnit": "ms", "delayOnStart": False,
             "startDelayTime": "", "server": f"client{d}", "useIOFile": False, "ioFile": "",
             "useIOForPayload": False, "emptyMsgOnFail": False, "wires": [[f"split{d}"]]},
            {"id": f"split{d}", "type": "function", "z": "tab", "name": "one per tag",
             "func": (
                 "const ts = new Date().toISOString();\n"
                 f"return [msg.payload.map((v, i) => ({{topic: 'nr/metrics/d{d}/p' + i, "
                 "payload: JSON.stringify({value: v, unit: '', quality: 'good', ts})}))];"
             ),
             "outputs": 1, "wires": [["out"]]},
        ]
    return flows


def install_nodered(tmp):
    folder = pathlib.Path(tmp) / "node-red"
    folder.mkdir()
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent",
         "node-red@4", "node-red-contrib-modbus@5.23.3"],
        cwd=folder, check=True)
    return folder


def start_nodered(folder, tmp, mqtt, plcs):
    user = pathlib.Path(tmp) / "nr-user"
    user.mkdir(exist_ok=True)
    (user / "flows.json").write_text(json.dumps(nodered_flows(mqtt, plcs)))
    (user / "settings.js").write_text(
        "module.exports = { flowFile: 'flows.json', uiPort: %d, httpAdminRoot: false,"
        " httpNodeRoot: false, logging: { console: { level: 'warn' } } };\n" % free_port())
    return subprocess.Popen(
        ["node", str(folder / "node_modules/node-red/red.js"), "--userDir", str(user),
         "--settings", str(user / "settings.js")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count_messages(mqtt, topic, seconds):
    """Messages delivered on `topic` in `seconds` (mosquitto_sub's own time limit)."""
    sub = subprocess.run(
        ["mosquitto_sub", "-p", str(mqtt), "-t", topic, "-W", str(seconds)],
        capture_output=True)
    return sub.stdout.count(b"\n")


def wait_first(mqtt, topic):
    subprocess.run(["mosquitto_sub", "-p", str(mqtt), "-t", topic, "-C", "1", "-W", "120"],
                   check=True, capture_output=True)


def measure(proc, mqtt, topic, seconds):
    wait_first(mqtt, topic)
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    messages = count_messages(mqtt, topic, seconds)
    cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    rss = rss_mib(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    return (cpu1 - cpu0) / (t1 - t0), rss, messages / (t1 - t0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    gateway = REPO / "target/release/qis-edge"
    if not gateway.exists():
        sys.exit("build the gateway first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="qis-nodered-")
    folder = install_nodered(tmp)
    mqtt = free_port()
    conf = pathlib.Path(tmp) / "mosquitto.conf"
    conf.write_text(f"listener {mqtt} 127.0.0.1\nallow_anonymous true\n")
    peers = [subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)]
    wait_listening(mqtt, "mosquitto")
    spec = json.dumps({"size": POINTS, "blocks": [
        {"table": "holding", "address": 0, "words": [100 + i for i in range(POINTS)]}]})
    plcs = []
    for _ in range(DEVICES):
        port = free_port()
        peers.append(subprocess.Popen(
            [sys.executable, str(REPO / "tests/peers/modbus_server.py"), "--port", str(port),
             "--spec", spec]))
        wait_listening(port, "pymodbus")
        plcs.append(port)
    config = gateway_config(tmp, mqtt, plcs)
    sides = {
        "qis-edge": (lambda: subprocess.Popen(
            [str(gateway), "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), "qis/bench/metrics/#"),
        "Node-RED": (lambda: start_nodered(folder, tmp, mqtt, plcs), "nr/metrics/#"),
    }
    results = {name: [] for name in sides}
    try:
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                start, topic = sides[name]
                results[name].append(measure(start(), mqtt, topic, args.seconds))
                cpu, rss, rate = results[name][-1]
                print(f"round {r + 1} {name:>8}: {cpu * 1000:7.1f} ms CPU/s, "
                      f"{rss:6.1f} MiB, {rate:7.0f} messages/s", flush=True)
    finally:
        for p in peers:
            p.terminate()
    q, n = results["qis-edge"], results["Node-RED"]
    cpu_ratio = [b[0] / a[0] for a, b in zip(q, n)]
    rss_ratio = [b[1] / a[1] for a, b in zip(q, n)]
    print(f"Node-RED / qis-edge over {args.rounds} alternating rounds (median [min–max]):")
    print(f"  CPU {statistics.median(cpu_ratio):.1f}× [{min(cpu_ratio):.1f}–{max(cpu_ratio):.1f}],"
          f" memory {statistics.median(rss_ratio):.1f}× [{min(rss_ratio):.1f}–{max(rss_ratio):.1f}]")


if __name__ == "__main__":
    main()
