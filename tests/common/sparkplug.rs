//! Sparkplug B peers: a primary host built on pysparkplug (tests/peers/sparkplug_host.py) that
//! prints every message it decodes and takes commands on stdin, and Eclipse Tahu's JavaScript
//! decoder (npm `sparkplug-payload`, tests/peers/sparkplug-payload) as a second opinion.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::process::ChildStdin;

/// The pysparkplug host: its decoded messages, in order.
pub struct SparkplugHost {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Every message seen so far.
    pub seen: Vec<Value>,
}

impl SparkplugHost {
    /// Subscribes to `spBv1.0/<group>/#` on the broker at `port`; `host_id` names it as the
    /// primary host whose STATE it publishes on command.
    pub async fn start(port: u16, group: &str, host_id: Option<&str>) -> Self {
        let mut c = Command::new(python());
        c.arg(repo().join("tests/peers/sparkplug_host.py")).args([
            "--port",
            &port.to_string(),
            "--group",
            group,
        ]);
        if let Some(h) = host_id {
            c.args(["--host-id", h]);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Sparkplug host (run ./tests/run.sh)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut host = Self {
            child,
            stdin,
            rx,
            seen: Vec::new(),
        };
        host.wait_for("the host subscribed", Duration::from_secs(20), |v| {
            v["ready"] == true
        })
        .await;
        host
    }

    /// Sends a command line (see the script).
    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next message matching `pred`, recording everything read on the way.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                _ => {
                    let last: Vec<String> = self
                        .seen
                        .iter()
                        .rev()
                        .take(8)
                        .map(|v| {
                            format!(
                                "{} seq {} {}",
                                v["type"],
                                v["seq"],
                                v["error"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                    panic!("timed out waiting for {what}; last messages: {last:?}")
                }
            }
        }
    }

    /// A message of `kind` (NBIRTH, DDATA, …), for `device` where given.
    pub async fn wait_kind(&mut self, kind: &str, device: Option<&str>) -> Value {
        let what = format!("{kind} {device:?}");
        self.wait_for(&what, Duration::from_secs(20), |v| {
            v["type"] == kind && device.is_none_or(|d| v["device"] == d)
        })
        .await
    }
}

impl Drop for SparkplugHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The metric named `name` of a decoded message.
pub fn metric<'a>(message: &'a Value, name: &str) -> &'a Value {
    message["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no metric `{name}` in {message}"))
}

/// Eclipse Tahu's decoder, one payload at a time.
pub struct TahuDecoder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl TahuDecoder {
    pub fn start() -> Self {
        let mut child = Command::new("node")
            .arg(repo().join("tests/peers/sparkplug-payload/decode.js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (run ./tests/run.sh)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The payload of hex digits `hex`, decoded.
    pub fn decode(&mut self, hex: &str) -> Value {
        writeln!(self.stdin, "{hex}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for TahuDecoder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
