//! Peer processes: spawned on a free port, proven to listen, killed on drop.

use super::*;

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub port: u16,
    /// Its log and configuration.
    pub _files: tempfile::TempDir,
}

/// Spawns a peer with its output in a log file, and waits until it listens on `port`.
/// `command` gives its command line, with a folder that lives as long as the peer.
pub fn spawn_peer(port: u16, what: &str, command: impl FnOnce(&Path) -> Command) -> Peer {
    try_spawn_peer(port, what, command).unwrap_or_else(|reason| panic!("{reason}"))
}

/// Spawns a peer on a free port: `command` gives its command line for a port and a folder.
/// Another process may take a port between the moment it was free and the peer's bind; the
/// peer then exits saying the address is in use, and starts again on another port.
pub fn spawn_peer_on_free_port(what: &str, command: impl Fn(u16, &Path) -> Command) -> Peer {
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

pub fn try_spawn_peer(
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

pub fn python() -> PathBuf {
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
