#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite:
#   - Debian packages: mosquitto (a real broker), socat (a pseudo-terminal pair as an RS-485
#     line), systemd (systemd-analyze), python3-venv, rabbitmq-server (a three-node fleet
#     cluster on loopback, with its own ports, cookie and epmd);
#     installed with apt-get when missing (as root, or through sudo);
#   - the Python test peers (pymodbus, asyncua, prometheus-client, pinned in
#     tests/requirements.txt) in ./.venv;
#   - Debian's chromium (the dashboard's browser tests; never a downloaded browser);
#   - the node test peers with npm, from Debian's nodejs and npm when node is missing: the
#     node-opcua server (tests/peers/node-opcua) and playwright-core driving chromium
#     (tests/peers/browser), each pinned in its package-lock.json;
#   - then `cargo test` (unit, integration and CLI tests). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v socat >/dev/null || missing+=(socat)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv=.venv
if ! "$venv/bin/python" -c 'import pymodbus, sys; import cryptography, serial, asyncua; from importlib.metadata import version; sys.exit(pymodbus.__version__ != "3.8.6" or cryptography.__version__ != "46.0.3" or serial.__version__ != "3.5" or version("asyncua") != "2.1.0" or version("prometheus-client") != "0.26.0" or version("pysparkplug") != "0.6.1")' 2>/dev/null; then
    echo "run.sh: creating $venv with the Python test peers"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
export QIS_TEST_PYTHON="$PWD/$venv/bin/python"

for node_peer in tests/peers/node-opcua tests/peers/browser tests/peers/sparkplug-payload; do
    if ! cmp -s "$node_peer/package-lock.json" "$node_peer/node_modules/.installed-from"; then
        echo "run.sh: installing $node_peer"
        (cd "$node_peer" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
        cp "$node_peer/package-lock.json" "$node_peer/node_modules/.installed-from"
    fi
done

cargo test --locked "$@"
