//! A RabbitMQ cluster on loopback (Debian's `rabbitmq-server` with its MQTT plugin): its own
//! configuration files, Erlang cookie, data folders and epmd port, so it touches nothing of a
//! system broker. MQTT sessions are quorum queues (`mqtt.durable_queue_type = quorum`),
//! replicated on every node: a session outlives the node it was made on.

use super::*;
use std::os::unix::process::CommandExt;

const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

/// One node: its ports, and its process while it runs.
struct Node {
    name: String,
    mqtt: u16,
    amqp: u16,
    dist: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The cluster; every node is killed on drop, then its epmd.
pub struct RabbitCluster {
    nodes: Vec<Node>,
    epmd_port: u16,
    _epmd: Peer,
    _files: tempfile::TempDir,
}

impl RabbitCluster {
    /// Starts `n` nodes at once (classic-config peer discovery forms the cluster on first
    /// boot) and waits until every one runs in the cluster.
    pub fn start(n: usize) -> Self {
        assert!(
            Path::new(RABBIT_BIN).join("rabbitmq-server").exists(),
            "rabbitmq-server is not installed: run ./tests/run.sh, which installs it"
        );
        let files = tempfile::tempdir().expect("tempdir");
        let epmd = spawn_peer_on_free_port("epmd", |port, _| {
            let mut c = Command::new("epmd");
            c.arg("-port").arg(port.to_string());
            c
        });
        let names: Vec<String> = (1..=n).map(|i| format!("qis{i}@localhost")).collect();
        let mut nodes: Vec<Node> = names
            .iter()
            .map(|name| Node {
                name: name.clone(),
                mqtt: free_port(),
                amqp: free_port(),
                dist: free_port(),
                dir: files.path().join(name.split('@').next().unwrap()),
                child: None,
            })
            .collect();
        for node in &mut nodes {
            write_node_files(node, &names);
        }
        let mut cluster = Self {
            nodes,
            epmd_port: epmd.port,
            _epmd: epmd,
            _files: files,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_running(i);
        }
        cluster
    }

    /// The MQTT port of every node, in order.
    pub fn mqtt_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.mqtt).collect()
    }

    /// Kills node `i` (SIGKILL to its whole process group: no orderly shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let group = i32::try_from(child.id()).expect("a process id");
            // SAFETY: kill(2) with a negative pid signals that process group only: the node's
            // own, made for it at spawn (`process_group(0)`).
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its data and waits until it runs in the cluster.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_running(i);
    }

    fn spawn(&mut self, i: usize) {
        let epmd_port = self.epmd_port;
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))
            .expect("node log");
        let mut c = Command::new(Path::new(RABBIT_BIN).join("rabbitmq-server"));
        node_env(&mut c, node, epmd_port);
        c.env("RABBITMQ_NODE_PORT", node.amqp.to_string())
            .env("RABBITMQ_DIST_PORT", node.dist.to_string())
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                node.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env("RABBITMQ_PID_FILE", node.dir.join("pid"))
            .env("RABBITMQ_CONF_ENV_FILE", node.dir.join("rabbitmq-env.conf"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                node.dir.join("advanced.config"),
            )
            .env("RABBITMQ_LOGS", "-")
            .stdout(Stdio::from(log.try_clone().expect("node log")))
            .stderr(Stdio::from(log))
            .process_group(0);
        node.child = Some(c.spawn().expect("start rabbitmq-server"));
    }

    /// Waits until node `i` accepts MQTT connections and the cluster has all its nodes
    /// running (`rabbitmqctl await_online_nodes`).
    fn wait_running(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let addr = SocketAddr::from(([127, 0, 0, 1], node.mqtt));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                panic!(
                    "RabbitMQ node {} exited ({status}):\n{}",
                    node.name,
                    std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "RabbitMQ node {} did not listen for MQTT on {} within 120 s:\n{}",
                node.name,
                node.mqtt,
                std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let n = self.nodes.len().to_string();
        let out = self.ctl(i, &["await_online_nodes", &n, "--timeout", "120"]);
        assert!(
            out.status.success(),
            "the cluster did not come together: {out:?}"
        );
    }

    /// Runs `rabbitmqctl` against node `i`.
    fn ctl(&self, i: usize, args: &[&str]) -> std::process::Output {
        let node = &self.nodes[i];
        let mut c = Command::new(Path::new(RABBIT_BIN).join("rabbitmqctl"));
        node_env(&mut c, node, self.epmd_port);
        c.arg("-n").arg(&node.name).args(args);
        c.output().expect("rabbitmqctl")
    }

    /// The type of every queue, as `rabbitmqctl list_queues name type` prints them.
    pub fn queue_types(&self) -> String {
        let out = self.ctl(0, &["list_queues", "name", "type", "--quiet"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The environment every command of a node shares: its home (with the cluster's Erlang
/// cookie), its node name and the cluster's epmd port.
fn node_env(c: &mut Command, node: &Node, epmd_port: u16) {
    c.env("HOME", node.dir.join("home"))
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_NODENAME", &node.name);
}

fn write_node_files(node: &Node, names: &[String]) {
    use std::os::unix::fs::PermissionsExt;
    let home = node.dir.join("home");
    std::fs::create_dir_all(&home).expect("node home");
    let cookie = home.join(".erlang.cookie");
    std::fs::write(&cookie, "QISEDGETESTCLUSTER").expect("cookie");
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).expect("cookie");
    let mut conf = format!(
        "listeners.tcp.default = {}\nmqtt.listeners.tcp.default = {}\n\
         mqtt.durable_queue_type = quorum\nloopback_users = none\n\
         cluster_formation.peer_discovery_backend = classic_config\n",
        node.amqp, node.mqtt
    );
    for (i, name) in names.iter().enumerate() {
        conf.push_str(&format!(
            "cluster_formation.classic_config.nodes.{} = {name}\n",
            i + 1
        ));
    }
    std::fs::write(node.dir.join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
    std::fs::write(node.dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n").expect("plugins");
}
