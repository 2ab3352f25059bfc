//! Real peers for the integration tests: a mosquitto broker and pymodbus servers, each started
//! on a free loopback port and killed when dropped, plus an MQTT observer.
//!
//! The peers must be installed (`./tests/run.sh` does it); a missing peer fails the test with
//! instructions rather than skipping it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_listening(port: u16, what: &str) {
    wait_listening_or_exit(port, what, None);
}

/// Like [`wait_listening`], but fails at once (with the peer's log) if the peer exits.
fn wait_listening_or_exit(port: u16, what: &str, mut peer: Option<(&mut Child, &Path)>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        if let Some((child, log)) = peer.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(*log).unwrap_or_default();
                panic!("{what} exited ({status}) before listening on port {port}:\n{log}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on port {port}");
}

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub port: u16,
    _logs: tempfile::TempDir,
}

/// Spawns a peer with its output in a log file, and waits until it listens on `port`.
fn spawn_peer(mut command: Command, port: u16, what: &str) -> Peer {
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("peer.log");
    let file = std::fs::File::create(&log).expect("peer log");
    let err = file.try_clone().expect("peer log");
    let mut child = command
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what}: {e}; run ./tests/run.sh to install the test peers")
        });
    wait_listening_or_exit(port, what, Some((&mut child, &log)));
    Peer {
        child,
        port,
        _logs: logs,
    }
}

impl Peer {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the peer as an orderly restart would (SIGTERM), and waits for it to exit.
    pub fn terminate(&mut self) {
        signal(&self.child, "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let p = std::env::var_os("QIS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run ./tests/run.sh, which creates the test venv with pymodbus",
        p.display()
    );
    p
}

/// A mosquitto broker on a free port.
pub fn mosquitto() -> Peer {
    mosquitto_on(free_port())
}

/// A mosquitto broker on a given port (to restart one where it was).
pub fn mosquitto_on(port: u16) -> Peer {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .expect("write mosquitto.conf");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&conf);
    let peer = spawn_peer(command, port, "mosquitto");
    // mosquitto has read its configuration; the directory may go.
    drop(dir);
    peer
}

/// A mosquitto broker on `port` that keeps sessions and queued messages in `dir` across an
/// orderly restart, queueing without a limit.
pub fn mosquitto_persistent(port: u16, dir: &Path) -> Peer {
    // Started as root, mosquitto drops to its own user, which must be able to save there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .expect("open the persistence directory to the broker's user");
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        ),
    )
    .expect("write mosquitto.conf");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&conf);
    spawn_peer(command, port, "mosquitto (persistent)")
}

/// A plant's mosquitto broker on a free port, bridged to a cloud broker on `cloud` for the
/// uplink topics `qis/v1/ctx/#` in both directions (QoS 1, persistent bridge session), as a
/// plant would run it.
pub fn mosquitto_bridged(cloud: u16, name: &str) -> Peer {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nconnection cloud-{name}\naddress 127.0.0.1:{cloud}\ntopic qis/v1/ctx/# both 1\n\
             cleansession false\nremote_clientid bridge-{name}\nrestart_timeout 1 2\n\
             keepalive_interval 5\n"
        ),
    )
    .expect("write mosquitto.conf");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&conf);
    let peer = spawn_peer(command, port, "mosquitto (bridged)");
    drop(dir);
    peer
}

/// A pymodbus TCP server with the given register spec (see tests/peers/modbus_server.py).
pub fn modbus_server(spec: &Value) -> Peer {
    modbus_server_on(free_port(), spec)
}

pub fn modbus_server_on(port: u16, spec: &Value) -> Peer {
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/peers/modbus_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--spec")
        .arg(spec.to_string());
    spawn_peer(command, port, "pymodbus server")
}

/// An asyncua OPC UA server (tests/peers/opcua_server.py) on loopback, driven through stdin.
pub struct OpcUaServer {
    peer: Option<Peer>,
    stdin: Option<std::process::ChildStdin>,
    pub port: u16,
    /// Holds the server's certificate (`server-cert.der`) across restarts.
    pub dir: PathBuf,
    args: Vec<String>,
}

impl OpcUaServer {
    /// Starts a server keeping its certificate in `dir`, with extra arguments such as
    /// `--policies encrypt`.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut server = Self {
            peer: None,
            stdin: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.restart();
        server
    }

    /// `opc.tcp://localhost:<port>/`
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://localhost:{}/", self.port)
    }

    /// Stops the server (SIGKILL, as a crash or power cut would).
    pub fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut p) = self.peer.take() {
            p.kill();
        }
    }

    /// Starts it again on the same port with the same certificate.
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new(python());
        command
            .arg(repo().join("tests/peers/opcua_server.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::piped());
        let mut peer = spawn_peer(command, self.port, "asyncua server");
        self.stdin = peer.child.stdin.take();
        self.peer = Some(peer);
    }

    /// Sends a command (`set Level 3.0`, `wave 160 2.0`).
    pub fn command(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the server is running");
        writeln!(stdin, "{line}").expect("command to the OPC UA server");
        stdin.flush().expect("command to the OPC UA server");
    }
}

/// One message seen on the broker.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub json: Value,
    pub raw: Vec<u8>,
    pub retained: bool,
    pub at: Instant,
}

/// An MQTT client that records everything under `qis/#`.
pub struct Observer {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Message>,
    pub seen: Vec<Message>,
}

impl Observer {
    pub async fn connect(port: u16) -> Self {
        Self::connect_filter(port, "qis/#").await
    }

    pub async fn connect_filter(port: u16, filter: &str) -> Self {
        let id = format!("observer-{}", rand_suffix());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let m = Message {
                            topic: p.topic.clone(),
                            json,
                            raw: p.payload.to_vec(),
                            retained: p.retain,
                            at: Instant::now(),
                        };
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self {
            client,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a message matching `pred`; panics with what was seen after `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return m;
                    }
                }
                Ok(None) => panic!("observer stopped while waiting for {what}"),
                Err(_) => {
                    let tail: Vec<String> = self
                        .seen
                        .iter()
                        .rev()
                        .take(15)
                        .map(|m| format!("{} {}", m.topic, m.json))
                        .collect();
                    panic!(
                        "timed out waiting for {what}; last messages:\n{}",
                        tail.join("\n")
                    );
                }
            }
        }
    }

    /// Like [`Observer::wait_for`], but also accepts a message that has already been seen.
    pub async fn saw_or_wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        if let Some(m) = self.seen.iter().find(|m| pred(m)) {
            return m.clone();
        }
        self.wait_for(what, timeout, pred).await
    }

    /// The next message of any kind, as topic and raw bytes.
    pub async fn wait_raw(&mut self, what: &str, timeout: Duration) -> (String, Vec<u8>) {
        let m = self.wait_for(what, timeout, |_| true).await;
        (m.topic, m.raw)
    }

    /// Collects everything for `duration`.
    pub async fn collect(&mut self, duration: Duration) -> Vec<Message> {
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.push(m.clone());
            out.push(m);
        }
        out
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .expect("publish");
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id())
}

/// Writes a config file into a temp dir and returns both.
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qis-edge.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// The gateway binary.
pub fn gateway_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_qis-edge"))
}

/// Sends a signal to a child (SIGTERM = "TERM").
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
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
            _logs: tempfile::tempdir().expect("tempdir"),
        },
        _dir: dir,
        a,
        b,
    }
}

/// A pymodbus RTU server (19200 baud, 8N2: Linux pseudo-terminals refuse parity) on a serial
/// device, with a register spec per unit id.
pub fn modbus_rtu_server(device: &Path, units: &Value) -> Child {
    let child = Command::new(python())
        .arg(repo().join("tests/peers/modbus_server.py"))
        .arg("--serial")
        .arg(device)
        .arg("--spec")
        .arg(units.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the pymodbus RTU server");
    // The server has no port to probe; give it a moment to open the line.
    std::thread::sleep(Duration::from_millis(1500));
    child
}

/// The context of the test plants' pump: the same in every plant, so their packets meet.
pub const PUMP_CONTEXT: &str = "[devices.context]\nequipment_class = \"Centrifugal pump\"\nprocess = \"cooling water\"\nsensor_kind = \"temperature\"\nmounting = \"bearing housing\"\n\n";

/// A gateway running in the test's process.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), qis_edge::gateway::RunError>>,
}

/// Starts a gateway in this process with a configuration text.
pub fn start(text: &str) -> Running {
    let config = qis_edge::config::parse_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(qis_edge::run(config, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

/// Stops it as SIGTERM would, and checks it stopped cleanly.
pub async fn stop(r: Running) {
    let _ = r.stop.send(());
    tokio::time::timeout(Duration::from_secs(10), r.task)
        .await
        .expect("the gateway stops within 10 s")
        .expect("the gateway task")
        .expect("the gateway ran without error");
}

/// Pushes holding register 0 of a PLC to `high` and back to `low`, as a process excursion:
/// waits for the alarm raise and its clear among `events` and returns the alarm id.
pub async fn raise_and_clear(
    observer: &mut Observer,
    events: &str,
    plc: u16,
    (high, low): (u16, u16),
    timeout: Duration,
) -> String {
    write_holding(plc, 0, high).await;
    let raised = observer
        .wait_for("an alarm raise", timeout, |m| {
            m.topic == events && m.json["type"] == "alarm" && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    write_holding(plc, 0, low).await;
    observer
        .wait_for("the alarm clearing", timeout, |m| {
            m.topic == events && m.json["to"] == "cleared" && m.json["alarm_id"] == id.as_str()
        })
        .await;
    id
}
