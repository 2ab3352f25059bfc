//! The asyncua OPC UA server, driven through stdin.

use super::*;

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

/// A node-opcua OPC UA server (tests/peers/node-opcua/server.js) on loopback, with the
/// certificate node-opcua creates by default (its application URI is the last alternative name).
pub struct NodeOpcUaServer {
    _peer: Peer,
    pub port: u16,
    /// Holds the server's PKI; its certificate is `pki/own/certs/certificate.pem`.
    pub dir: PathBuf,
}

impl NodeOpcUaServer {
    /// Starts a server on a free port, keeping its PKI in `dir`.
    pub fn start(dir: &Path) -> Self {
        let script = repo().join("tests/peers/node-opcua/server.js");
        assert!(
            repo().join("tests/peers/node-opcua/node_modules").is_dir(),
            "node-opcua is not installed: run ./tests/run.sh, which installs it with npm"
        );
        let peer = spawn_peer_on_free_port("node-opcua server", |port, _| {
            let mut command = Command::new("node");
            command
                .arg(&script)
                .arg("--port")
                .arg(port.to_string())
                .arg("--dir")
                .arg(dir);
            command
        });
        Self {
            port: peer.port,
            _peer: peer,
            dir: dir.to_path_buf(),
        }
    }

    /// The server's certificate (PEM), as an engineer would copy it to the trusted folder.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("pki/own/certs/certificate.pem")
    }
}
