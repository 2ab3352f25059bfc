#!/usr/bin/env bash
# Builds the release binary for aarch64-unknown-linux-gnu (Raspberry Pi 4B) without Docker,
# with Debian's Rust toolchain (which ships an arm64 standard library) and the aarch64 cross
# linker, then runs it under qemu user-mode emulation: `--version`, `check` on the example and
# demo configurations, and `check` on a broken one (must exit 78); then strips a copy and fails
# when it is larger than the 12 MB budget.
#
# Users build with `cross build --release --target aarch64-unknown-linux-gnu` (Cross.toml);
# this script checks the same target where no Docker engine is available.
# Needs (Debian bookworm, as root): dpkg --add-architecture arm64; apt-get install
#   rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
for tool in /usr/bin/cargo aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || { echo "aarch64.sh: $tool missing (see the header of this script)" >&2; exit 1; }
done

# The runner applies to this route only; a native build on a Pi must not inherit it.
cargo_config=$(mktemp)
trap 'rm -f "$cargo_config"' EXIT
cat > "$cargo_config" <<CONF
[target.$target]
linker = "aarch64-linux-gnu-gcc"
CONF

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_AARCH64:-target-aarch64}"
# Debian's cargo and rustc, not the rustup proxies earlier on PATH.
PATH=/usr/bin:$PATH cargo --config "$cargo_config" build --release --locked --target "$target"

bin="$CARGO_TARGET_DIR/$target/release/qis-edge"
file "$bin" 2>/dev/null || true
# Plain qemu-aarch64: passing -L /usr/aarch64-linux-gnu mixes two glibc builds and hangs.
run() { qemu-aarch64 -cpu cortex-a72 "$bin" "$@"; }

run --version
run check --config config/example.toml
# The dashboard login's hash, made by the aarch64 binary itself.
hash=$(printf 'demo-password\n' | run passwd)
sed -e 's/{MQTT_PORT}/1883/; s/{PRESS_PORT}/5020/; s/{PUMP_PORT}/5021/; s#{STATE_DIR}#/tmp/qis-edge-demo#' \
    -e 's/{WEB_PORT}/8080/' -e "s|{PASSWORD_HASH}|$hash|" \
    config/demo.toml.in > "$cargo_config.demo.toml"
run check --config "$cargo_config.demo.toml"
rm -f "$cargo_config.demo.toml"

broken=$(mktemp --suffix=.toml)
printf '[site]\nid = "bad id"\n[mqtt]\nport = 0\n' > "$broken"
set +e
run check --config "$broken"
code=$?
set -e
rm -f "$broken"
if [ "$code" -ne 78 ]; then
    echo "aarch64.sh: check on a broken config exited $code, expected 78" >&2
    exit 1
fi
# The binary users flash, stripped (release keeps symbols for support): within its budget.
stripped="$CARGO_TARGET_DIR/$target/release/qis-edge.stripped"
aarch64-linux-gnu-strip -o "$stripped" "$bin"
size=$(stat -c %s "$stripped")
budget=12000000
echo "aarch64.sh: stripped binary $size bytes (budget $budget)"
if [ "$size" -gt "$budget" ]; then
    echo "aarch64.sh: the stripped binary grew past its budget of $budget bytes: see the README's binary size notes" >&2
    exit 1
fi
echo "aarch64.sh: OK ($target binary runs under qemu)"
