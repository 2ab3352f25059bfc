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
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on port {port}");
}

/// The sockets listening on a TCP port (IPv4 or IPv6), from /proc/net, named as a process's
/// file descriptors link to them: `socket:[<inode>]`.
fn listening_sockets(port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local_address is field 1, st field 3 (0A = LISTEN), inode field 9.
                    (fields.len() > 9 && fields[1].ends_with(&port) && fields[3] == "0A")
                        .then(|| format!("socket:[{}]", fields[9]))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether process `pid` itself holds a socket listening on `port`: a probe that merely
/// connects cannot tell a peer from another test's process that took the same port.
fn listens(pid: u32, port: u16) -> bool {
    let sockets = listening_sockets(port);
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
}

/// How a peer's start ended.
enum Started {
    Listening,
    /// It exited before listening; its log says why.
    Exited(String),
}

/// Waits until the child itself listens on `port`, or exits.
fn wait_child_listening(child: &mut Child, log: &Path, port: u16, what: &str) -> Started {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if listens(child.id(), port) {
            return Started::Listening;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Started::Exited(format!(
                "{what} exited ({status}) before listening on port {port}:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("{what} did not start listening on port {port}");
}

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub port: u16,
    /// Its log and configuration.
    _files: tempfile::TempDir,
}

/// Spawns a peer with its output in a log file, and waits until it listens on `port`.
/// `command` gives its command line, with a folder that lives as long as the peer.
fn spawn_peer(port: u16, what: &str, command: impl FnOnce(&Path) -> Command) -> Peer {
    try_spawn_peer(port, what, command).unwrap_or_else(|reason| panic!("{reason}"))
}

/// Spawns a peer on a free port: `command` gives its command line for a port and a folder.
/// Another process may take a port between the moment it was free and the peer's bind; the
/// peer then exits saying the address is in use, and starts again on another port.
fn spawn_peer_on_free_port(what: &str, command: impl Fn(u16, &Path) -> Command) -> Peer {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        match try_spawn_peer(port, what, |dir| command(port, dir)) {
            Ok(peer) => return peer,
            Err(reason) if reason.to_lowercase().contains("in use") => last = reason,
            Err(reason) => panic!("{reason}"),
        }
    }
    panic!("{what} found no free port in 5 tries; the last:\n{last}");
}

fn try_spawn_peer(
    port: u16,
    what: &str,
    command: impl FnOnce(&Path) -> Command,
) -> Result<Peer, String> {
    let files = tempfile::tempdir().expect("tempdir");
    let log = files.path().join("peer.log");
    let file = std::fs::File::create(&log).expect("peer log");
    let err = file.try_clone().expect("peer log");
    let mut child = command(files.path())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what}: {e}; run ./tests/run.sh to install the test peers")
        });
    match wait_child_listening(&mut child, &log, port, what) {
        Started::Listening => Ok(Peer {
            child,
            port,
            _files: files,
        }),
        Started::Exited(reason) => Err(reason),
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
    spawn_peer_on_free_port("mosquitto", mosquitto_command)
}

/// A mosquitto broker on a given port (to restart one where it was).
pub fn mosquitto_on(port: u16) -> Peer {
    spawn_peer(port, "mosquitto", |dir| mosquitto_command(port, dir))
}

/// mosquitto with a configuration written into `dir`.
fn mosquitto_configured(dir: &Path, conf: String) -> Command {
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("write mosquitto.conf");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(path);
    command
}

fn mosquitto_command(port: u16, dir: &Path) -> Command {
    mosquitto_configured(
        dir,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
}

/// A mosquitto broker on a free port that keeps sessions and queued messages in `dir` across
/// an orderly restart, queueing without a limit.
pub fn mosquitto_persistent(dir: &Path) -> Peer {
    spawn_peer_on_free_port("mosquitto (persistent)", |port, files| {
        mosquitto_persistent_command(port, dir, files)
    })
}

/// [`mosquitto_persistent`] on a given port (to restart one where it was).
pub fn mosquitto_persistent_on(port: u16, dir: &Path) -> Peer {
    spawn_peer(port, "mosquitto (persistent)", |files| {
        mosquitto_persistent_command(port, dir, files)
    })
}

fn mosquitto_persistent_command(port: u16, dir: &Path, files: &Path) -> Command {
    // Started as root, mosquitto drops to its own user, which must be able to save there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .expect("open the persistence directory to the broker's user");
    mosquitto_configured(
        files,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        ),
    )
}

/// A plant's mosquitto broker on a free port, bridged to a cloud broker on `cloud` for the
/// uplink topics `qis/v1/ctx/#` in both directions (QoS 1, persistent bridge session), as a
/// plant would run it.
pub fn mosquitto_bridged(cloud: u16, name: &str) -> Peer {
    spawn_peer_on_free_port("mosquitto (bridged)", |port, dir| {
        mosquitto_configured(
            dir,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nconnection cloud-{name}\naddress 127.0.0.1:{cloud}\n\
                 topic qis/v1/ctx/# both 1\ncleansession false\nremote_clientid bridge-{name}\n\
                 restart_timeout 1 2\nkeepalive_interval 5\n"
            ),
        )
    })
}

/// A pymodbus TCP server with the given register spec (see tests/peers/modbus_server.py).
pub fn modbus_server(spec: &Value) -> Peer {
    spawn_peer_on_free_port("pymodbus server", |port, _| modbus_command(port, spec))
}

/// [`modbus_server`] on a given port (to restart one where it was).
pub fn modbus_server_on(port: u16, spec: &Value) -> Peer {
    spawn_peer(port, "pymodbus server", |_| modbus_command(port, spec))
}

fn modbus_command(port: u16, spec: &Value) -> Command {
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/peers/modbus_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--spec")
        .arg(spec.to_string());
    command
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
    /// Starts a server on a free port, keeping its certificate in `dir`, with extra arguments
    /// such as `--policies encrypt`.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut server = Self {
            peer: None,
            stdin: None,
            port: 0,
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let peer = spawn_peer_on_free_port("asyncua server", |port, _| server.command_on(port));
        server.port = peer.port;
        server.adopt(peer);
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
        let peer = spawn_peer(self.port, "asyncua server", |_| self.command_on(self.port));
        self.adopt(peer);
    }

    fn command_on(&self, port: u16) -> Command {
        let mut command = Command::new(python());
        command
            .arg(repo().join("tests/peers/opcua_server.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::piped());
        command
    }

    fn adopt(&mut self, mut peer: Peer) {
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
    /// The last connection error, if any, for the failure message.
    link: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Observer {
    pub async fn connect(port: u16) -> Self {
        Self::connect_filter(port, "qis/#").await
    }

    /// Subscribes to `filter` on every connection: a new session after a connection error
    /// would otherwise have lost the subscription.
    pub async fn connect_filter(port: u16, filter: &str) -> Self {
        let id = format!("observer-{}", rand_suffix());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let link = std::sync::Arc::new(std::sync::Mutex::new("not connected yet".to_string()));
        let (subscriber, filter, state) = (client.clone(), filter.to_string(), link.clone());
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        *state.lock().unwrap() = "connected".into();
                        let _ = subscriber.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                    }
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
                    Err(e) => {
                        *state.lock().unwrap() = format!("connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Self {
            client,
            rx,
            seen: Vec::new(),
            link,
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
                        "timed out waiting for {what}; observer {}; last messages:\n{}",
                        self.link.lock().unwrap(),
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
    task: tokio::task::JoinHandle<Result<(), qis_edge::run::RunError>>,
}

/// Starts a gateway in this process with a configuration text.
pub fn start(text: &str) -> Running {
    capture_logs();
    let config = qis_edge::config::parse_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(qis_edge::run(config, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

/// Sends the gateway's log lines (INFO and up, or as `RUST_LOG` says) to the output of the
/// test whose threads wrote them, which the harness prints when that test fails.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    });
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
