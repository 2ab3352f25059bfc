//! The gateway under test: in-process, or as the binary; its config file; the shared pump context and excursion.

use super::*;

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
pub fn capture_logs() {
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

/// [`raise_and_clear`] of the test plants' rule at site `site`: 90 °C, then 20 °C.
pub async fn raise_at(observer: &mut Observer, site: &str, plc: u16) -> String {
    raise_and_clear(
        observer,
        &format!("qis/{site}/events"),
        plc,
        (90, 20),
        Duration::from_secs(20),
    )
    .await
}
