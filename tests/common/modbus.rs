//! pymodbus servers: TCP, and RTU on a socat pseudo-terminal pair; writes as an HMI would.

use super::*;

/// A pymodbus TCP server with the given register spec (see tests/peers/modbus_server.py).
pub fn modbus_server(spec: &Value) -> Peer {
    spawn_peer_on_free_port("pymodbus server", |port, _| modbus_command(port, spec))
}

/// [`modbus_server`] on a given port (to restart one where it was).
pub fn modbus_server_on(port: u16, spec: &Value) -> Peer {
    spawn_peer(port, "pymodbus server", |_| modbus_command(port, spec))
}

pub fn modbus_command(port: u16, spec: &Value) -> Command {
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/peers/modbus_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--spec")
        .arg(spec.to_string());
    command
}

/// Writes one holding register on a Modbus server (function 06), as an operator's HMI would.
pub async fn write_holding(port: u16, address: u16, value: u16) {
    use tokio_modbus::client::Writer;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut ctx = tokio_modbus::client::tcp::connect(addr)
        .await
        .expect("connect to the modbus server");
    ctx.write_single_register(address, value)
        .await
        .expect("transport")
        .expect("exception");
}

/// A pair of connected pseudo-terminals (socat), standing in for an RS-485 line.
pub struct SerialPair {
    _socat: Peer,
    _dir: tempfile::TempDir,
    /// The gateway's end.
    pub a: PathBuf,
    /// The device's end.
    pub b: PathBuf,
}

pub fn serial_pair() -> SerialPair {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
    let child = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat not found: run ./tests/run.sh (apt package socat)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(a.exists() && b.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "socat did not create the pseudo-terminals"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    SerialPair {
        _socat: Peer {
            child,
            port: 0,
            _files: tempfile::tempdir().expect("tempdir"),
        },
        _dir: dir,
        a,
        b,
    }
}

/// A pymodbus RTU server (19200 baud, 8N2: Linux pseudo-terminals refuse parity) on a serial
/// device, with a register spec per unit id.
pub fn modbus_rtu_server(device: &Path, units: &Value) -> Child {
    let mut child = Command::new(python())
        .arg(repo().join("tests/peers/modbus_server.py"))
        .arg("--serial")
        .arg(device)
        .arg("--spec")
        .arg(units.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the pymodbus RTU server");
    // The server has no port to probe: it prints `ready` once the line is open.
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("reading the RTU server's output");
    assert_eq!(
        line.trim(),
        "ready",
        "the pymodbus RTU server did not start"
    );
    child
}
