//! A real browser: Debian's Chromium, headless, driven by tests/peers/browser/driver.js
//! (playwright-core) one JSON command per line.

use super::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The browser process and its command pipe.
pub struct Browser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Browser {
    /// Starts Chromium; panics, saying how to install it, when it cannot.
    pub async fn start() -> Self {
        let dir = repo().join("tests/peers/browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed: run ./tests/run.sh"
        );
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "Chromium is not installed: run ./tests/run.sh (apt-get install chromium)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("driver.js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node for the browser driver");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut browser = Self {
            child,
            stdin,
            stdout,
        };
        let ready = browser.answer().await;
        assert_eq!(ready, Ok(json!("ready")), "the browser started");
        browser
    }

    async fn answer(&mut self) -> Result<Value, String> {
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("the browser driver answers within 60 s")
            .expect("the browser driver's output")
            .expect("the browser driver is running");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["ok"] == true {
            Ok(v["value"].clone())
        } else {
            Err(v["error"].as_str().unwrap_or_default().to_string())
        }
    }

    /// Sends a command; its value, or the browser's error.
    pub async fn try_call(&mut self, command: Value) -> Result<Value, String> {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        self.answer().await
    }

    /// Sends a command; panics with the browser's error and `what`.
    pub async fn call(&mut self, what: &str, command: Value) -> Value {
        self.try_call(command)
            .await
            .unwrap_or_else(|e| panic!("browser: {what}: {e}"))
    }

    /// A screenshot of the current page in `target/screenshots/<name>.png`.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let dir = repo().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        self.call(
            "screenshot",
            json!({"cmd": "screenshot", "path": path.display().to_string()}),
        )
        .await;
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
