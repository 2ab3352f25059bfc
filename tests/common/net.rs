//! Free loopback ports, and proof from /proc that a given process is the one listening.

use super::*;

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
pub fn listening_sockets(port: u16) -> Vec<String> {
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
pub fn listens(pid: u32, port: u16) -> bool {
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
pub enum Started {
    Listening,
    /// It exited before listening; its log says why.
    Exited(String),
}

/// Waits until the child itself listens on `port`, or exits.
pub fn wait_child_listening(child: &mut Child, log: &Path, port: u16, what: &str) -> Started {
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
