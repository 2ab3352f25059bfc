//! OPC UA devices against a real asyncua server (tests/peers/opcua_server.py) and a real
//! mosquitto broker: scalars by subscription and by polling, deadband, reconnection and
//! re-subscription after a server restart, Basic256Sha256 SignAndEncrypt and Sign with user and
//! certificate identities, the untrusted-certificate message, and array waveforms analysed as
//! vibration.

mod common;

use common::{mosquitto, start, stop, Message, Observer, OpcUaServer};
use std::path::Path;
use std::time::Duration;

fn header(site: &str, mqtt_port: u16, state: &Path) -> String {
    format!(
        "[site]\nid = \"{site}\"\nstate_dir = \"{}\"\n\n[mqtt]\nport = {mqtt_port}\nkeep_alive_s = 5\n\n\
         [metrics]\nmin_interval_ms = 0\nmax_interval_ms = 0\n\n",
        state.display()
    )
}

fn metric<'a>(m: &'a Message, site: &str, device: &str, point: &str) -> Option<&'a Message> {
    (m.topic == format!("qis/{site}/metrics/{device}/{point}")).then_some(m)
}

fn good_value(m: &Message, site: &str, device: &str, point: &str, value: f64) -> bool {
    metric(m, site, device, point)
        .is_some_and(|m| m.json["quality"] == "good" && m.json["value"].as_f64() == Some(value))
}

/// A metric of the point whose `error` contains `fragment`.
fn error_contains(m: &Message, site: &str, device: &str, point: &str, fragment: &str) -> bool {
    metric(m, site, device, point).is_some_and(|m| {
        m.json["error"]
            .as_str()
            .is_some_and(|e| e.contains(fragment))
    })
}

/// The points every scalar test device reads: (point, node, extra keys, expected value).
const SCALARS: &[(&str, &str, &str, f64)] = &[
    // 21.5 × 2 + 1
    (
        "temperature",
        "ns=2;s=Temperature",
        "scale = 2.0\noffset = 1.0\n",
        44.0,
    ),
    ("pressure", "ns=2;s=Pressure", "", 1.25),
    ("count", "ns=2;s=Count", "", -42.0),
    ("running", "ns=2;s=Running", "", 1.0),
    ("big", "ns=2;s=Big", "", 1_099_511_627_776.0),
];

fn scalar_points() -> String {
    let mut text = String::new();
    for (name, node, extra, _) in SCALARS {
        text += &format!("[[devices.points]]\nname = \"{name}\"\nnode = \"{node}\"\n{extra}\n");
    }
    text + "[[devices.points]]\nname = \"mode\"\nnode = \"ns=2;s=Mode\"\n\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalars_arrive_by_subscription_and_by_polling_and_the_deadband_holds_back_small_changes() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let mut server = OpcUaServer::start(&dir.path().join("server"), &[]);
    let text = header("ua", broker.port, &dir.path().join("state"))
        + &format!(
            "[[devices]]\ntype = \"opcua\"\nname = \"sub\"\nendpoint = \"{e}\"\ninterval_ms = 100\n\n{points}\
             [[devices.points]]\nname = \"level\"\nnode = \"ns=2;s=Level\"\nsampling_interval_ms = 50\ndeadband = 0.5\n\n\
             [[devices]]\ntype = \"opcua\"\nname = \"poll\"\nendpoint = \"{e}\"\nread = \"poll\"\ninterval_ms = 100\n\n{points}\
             [[devices.points]]\nname = \"level\"\nnode = \"ns=2;s=Level\"\n\n",
            e = server.endpoint(),
            points = scalar_points()
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    for device in ["sub", "poll"] {
        for (point, _, _, value) in SCALARS {
            observer
                .saw_or_wait_for(
                    &format!("{device}/{point} = {value}"),
                    Duration::from_secs(20),
                    |m| good_value(m, "ua", device, point, *value),
                )
                .await;
        }
        let mode = observer
            .saw_or_wait_for(&format!("{device}/mode"), Duration::from_secs(5), |m| {
                metric(m, "ua", device, "mode").is_some_and(|m| m.json["quality"] == "good")
            })
            .await;
        assert_eq!(mode.json["text"], "auto");
    }

    server.command("set Level 3.0");
    for device in ["sub", "poll"] {
        observer
            .saw_or_wait_for(
                &format!("{device}/level = 3"),
                Duration::from_secs(10),
                |m| good_value(m, "ua", device, "level", 3.0),
            )
            .await;
    }
    // 3.2 is within the 0.5 deadband of 3.0: the poller sees it, the subscription must not.
    server.command("set Level 3.2");
    observer
        .wait_for("poll/level = 3.2", Duration::from_secs(10), |m| {
            good_value(m, "ua", "poll", "level", 3.2)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.command("set Level 4.0");
    observer
        .wait_for("sub/level = 4", Duration::from_secs(10), |m| {
            good_value(m, "ua", "sub", "level", 4.0)
        })
        .await;
    let sub_levels: Vec<f64> = observer
        .seen
        .iter()
        .filter_map(|m| metric(m, "ua", "sub", "level"))
        .filter_map(|m| m.json["value"].as_f64())
        .collect();
    assert!(
        !sub_levels.contains(&3.2),
        "a change inside the deadband was reported: {sub_levels:?}"
    );

    let stats = observer
        .saw_or_wait_for("poll stats", Duration::from_secs(15), |m| {
            m.topic == "qis/ua/stats/poll"
        })
        .await;
    assert!(stats.json["requests"].as_u64().unwrap() > 0);
    assert_eq!(
        stats.json["requests_last_poll"], 1,
        "one Read per poll for all nodes"
    );
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reconnects_and_resubscribes_after_the_server_restarts() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let mut server = OpcUaServer::start(&dir.path().join("server"), &[]);
    let text = header("restart", broker.port, &dir.path().join("state"))
        + &format!(
            "[[devices]]\ntype = \"opcua\"\nname = \"plc\"\nendpoint = \"{}\"\ninterval_ms = 100\n\
             backoff_initial_ms = 200\nbackoff_max_ms = 1000\n\n\
             [[devices.points]]\nname = \"level\"\nnode = \"ns=2;s=Level\"\nsampling_interval_ms = 50\n",
            server.endpoint()
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    server.command("set Level 1.5");
    observer
        .wait_for("level = 1.5", Duration::from_secs(20), |m| {
            good_value(m, "restart", "plc", "level", 1.5)
        })
        .await;

    server.kill();
    let bad = observer
        .wait_for(
            "level bad while the server is down",
            Duration::from_secs(20),
            |m| metric(m, "restart", "plc", "level").is_some_and(|m| m.json["quality"] == "bad"),
        )
        .await;
    assert!(bad.json["error"].as_str().is_some_and(|e| !e.is_empty()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    server.restart();
    // The restarted server knows neither the session nor the subscription: a value that
    // changes after the restart arrives only through a re-created subscription.
    observer
        .wait_for("level good again", Duration::from_secs(30), |m| {
            good_value(m, "restart", "plc", "level", 0.0)
        })
        .await;
    server.command("set Level 7.25");
    observer
        .wait_for(
            "level = 7.25 after the restart",
            Duration::from_secs(10),
            |m| good_value(m, "restart", "plc", "level", 7.25),
        )
        .await;
    stop(gateway).await;
}

fn secure_device(name: &str, endpoint: &str, keys: &str) -> String {
    format!(
        "[[devices]]\ntype = \"opcua\"\nname = \"{name}\"\nendpoint = \"{endpoint}\"\nread = \"poll\"\n\
         interval_ms = 200\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\n{keys}\n\
         [[devices.points]]\nname = \"temperature\"\nnode = \"ns=2;s=Temperature\"\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_sign_and_encrypt_with_user_and_certificate_identities() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let (user_cert, user_key) = (
        dir.path().join("user-cert.der"),
        dir.path().join("user-key.pem"),
    );
    let server = OpcUaServer::start(
        &dir.path().join("server"),
        &[
            "--policies",
            "sign,encrypt",
            "--users",
            "alice:secret",
            "--user-cert",
            user_cert.to_str().unwrap(),
            "--user-key",
            user_key.to_str().unwrap(),
            "--no-anonymous",
        ],
    );
    // The maintenance engineer drops the server's certificate into the trusted folder under a
    // name of their own.
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("pki/trusted")).unwrap();
    std::fs::copy(
        server.dir.join("server-cert.der"),
        state.join("pki/trusted/line3-plc.der"),
    )
    .unwrap();
    let e = server.endpoint();
    let text = header("secure", broker.port, &state)
        + &secure_device(
            "encrypted",
            &e,
            "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n\
             identity = { user = \"alice\", password = \"secret\" }\n",
        )
        + &secure_device(
            "signed",
            &e,
            &format!(
                "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign\"\n\
                 identity = {{ certificate = \"{}\", private_key = \"{}\" }}\n",
                user_cert.display(),
                user_key.display()
            ),
        )
        + &secure_device(
            "wrong_password",
            &e,
            "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n\
             identity = { user = \"alice\", password = \"guess\" }\n",
        )
        + &secure_device("plain", &e, "");
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    for device in ["encrypted", "signed"] {
        observer
            .saw_or_wait_for(
                &format!("{device}/temperature over Basic256Sha256"),
                Duration::from_secs(30),
                |m| good_value(m, "secure", device, "temperature", 21.5),
            )
            .await;
    }
    let refused = observer
        .saw_or_wait_for("the wrong password refused", Duration::from_secs(20), |m| {
            error_contains(
                m,
                "secure",
                "wrong_password",
                "temperature",
                "refused the identity",
            )
        })
        .await;
    assert_eq!(refused.json["quality"], "bad");
    let plain = observer
        .saw_or_wait_for("no unsecured endpoint", Duration::from_secs(20), |m| {
            error_contains(m, "secure", "plain", "temperature", "offers")
        })
        .await;
    let error = plain.json["error"].as_str().unwrap();
    assert!(
        error.contains("no endpoint with security None") && error.contains("Basic256Sha256"),
        "{error}"
    );
    assert!(
        state.join("pki/own/cert.der").is_file(),
        "the client certificate is created in the state directory"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("pki/private/private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is the gateway's alone: {mode:o}"
        );
    }
    assert!(observer
        .seen
        .iter()
        .all(|m| metric(m, "secure", "wrong_password", "temperature")
            .is_none_or(|m| m.json["quality"] != "good")));
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_certificate_says_which_file_to_move_where_and_first_use_trust_pins() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let mut server = OpcUaServer::start(&dir.path().join("server"), &["--policies", "encrypt"]);
    let state = dir.path().join("state");
    let keys = "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n";
    let text = header("trust", broker.port, &state)
        + &secure_device("strict", &server.endpoint(), keys)
        + &secure_device(
            "first_use",
            &server.endpoint(),
            &format!("{keys}trust_server_on_first_use = true\n"),
        );
    let mut observer = Observer::connect(broker.port).await;
    // The strict device starts alone, so that first-use trust does not trust for it.
    let strict_only = text
        .split("[[devices]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[devices]]");
    let gateway = start(&strict_only);
    let untrusted = observer
        .wait_for(
            "the untrusted certificate message",
            Duration::from_secs(30),
            |m| error_contains(m, "trust", "strict", "temperature", "is not trusted"),
        )
        .await;
    let message = untrusted.json["error"].as_str().unwrap().to_string();
    let trusted_dir = state.join("pki/trusted");
    let rejected_dir = state.join("pki/rejected");
    assert!(
        message.contains(&format!("move it to {}/", trusted_dir.display())),
        "{message}"
    );
    let rejected: Vec<_> = std::fs::read_dir(&rejected_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        message.contains(&rejected[0].display().to_string()),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&rejected[0]).unwrap(),
        std::fs::read(server.dir.join("server-cert.der")).unwrap(),
        "the rejected file is the server's certificate"
    );

    // Do as the message says; the gateway connects without a restart.
    let name = rejected[0].file_name().unwrap();
    std::fs::rename(&rejected[0], trusted_dir.join(name)).unwrap();
    observer
        .wait_for(
            "strict connects once trusted",
            Duration::from_secs(20),
            |m| good_value(m, "trust", "strict", "temperature", 21.5),
        )
        .await;
    stop(gateway).await;

    // First-use trust in a gateway of its own.
    let state2 = dir.path().join("state2");
    let first_use_only = header("trust", broker.port, &state2)
        + &text
            .split("[[devices]]")
            .nth(2)
            .map(|d| format!("[[devices]]{d}"))
            .unwrap();
    let gateway = start(&first_use_only);
    observer
        .wait_for("first use trusts", Duration::from_secs(30), |m| {
            good_value(m, "trust", "first_use", "temperature", 21.5)
        })
        .await;
    assert!(state2.join("pki/first-use/first_use").is_file());
    assert_eq!(
        std::fs::read_dir(state2.join("pki/trusted"))
            .unwrap()
            .count(),
        1
    );

    // The server comes back with another certificate: refused, not trusted again.
    server.kill();
    std::fs::remove_file(server.dir.join("server-cert.der")).unwrap();
    std::fs::remove_file(server.dir.join("server-key.pem")).unwrap();
    server.restart();
    let refused = observer
        .wait_for(
            "a changed certificate refused",
            Duration::from_secs(30),
            |m| error_contains(m, "trust", "first_use", "temperature", "is not trusted"),
        )
        .await;
    assert_eq!(refused.json["quality"], "bad");
    assert_eq!(
        std::fs::read_dir(state2.join("pki/trusted"))
            .unwrap()
            .count(),
        1
    );
    stop(gateway).await;
}

/// RMS and peak about the mean of the tone the server holds (`amp` sin 2π f i / fs), scaled.
fn tone_features(n: usize, fs: f64, hz: f64, amp: f64, scale: f64) -> (f64, f64) {
    let x: Vec<f64> = (0..n)
        .map(|i| scale * amp * (2.0 * std::f64::consts::PI * hz * i as f64 / fs).sin())
        .collect();
    let mean = x.iter().sum::<f64>() / n as f64;
    let rms = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let peak = x.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
    (rms, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opcua_array_waveform_is_analysed_window_by_window() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    // 4 096 samples of 1 000 milli-g at 160 Hz, sampled at 25.6 kHz.
    let mut server = OpcUaServer::start(
        &dir.path().join("server"),
        &[
            "--wave-n",
            "4096",
            "--wave-rate",
            "25600",
            "--wave-hz",
            "160",
            "--wave-amp",
            "1000",
        ],
    );
    let text = header("wave", broker.port, &dir.path().join("state"))
        + &format!(
            "[[devices]]\ntype = \"vibration\"\nname = \"pump\"\nsample_rate = 25600\nwindow = 4096\n\
             interval_ms = 200\nspectrum_points = 0\n\n\
             [devices.opcua]\nendpoint = \"{}\"\nnode = \"ns=2;s=Waveform\"\nscale = 0.001\n\n\
             [[devices.points]]\nname = \"rms\"\nfeature = \"rms\"\n\n\
             [[devices.points]]\nname = \"peak\"\nfeature = \"peak\"\n",
            server.endpoint()
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let close = |m: &Message, point: &str, expected: f64| {
        metric(m, "wave", "pump", point).is_some_and(|m| {
            m.json["quality"] == "good"
                && m.json["value"]
                    .as_f64()
                    .is_some_and(|v| (v - expected).abs() <= 1e-9 * expected)
        })
    };
    let (rms, peak) = tone_features(4096, 25600.0, 160.0, 1000.0, 0.001);
    assert!((rms - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.01);
    observer
        .wait_for("rms of the 1 g tone", Duration::from_secs(30), |m| {
            close(m, "rms", rms)
        })
        .await;
    observer
        .saw_or_wait_for("peak of the 1 g tone", Duration::from_secs(5), |m| {
            close(m, "peak", peak)
        })
        .await;

    // The machine's vibration doubles: the next windows say so.
    server.command("wave 320 2000");
    let (rms, peak) = tone_features(4096, 25600.0, 320.0, 2000.0, 0.001);
    observer
        .wait_for("rms of the 2 g tone", Duration::from_secs(10), |m| {
            close(m, "rms", rms)
        })
        .await;
    observer
        .saw_or_wait_for("peak of the 2 g tone", Duration::from_secs(5), |m| {
            close(m, "peak", peak)
        })
        .await;
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_the_gateway_certificate_is_told_which_file_to_trust() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("server-trusted-clients");
    let server = OpcUaServer::start(
        &dir.path().join("server"),
        &[
            "--policies",
            "encrypt",
            "--trusted-clients",
            clients.to_str().unwrap(),
        ],
    );
    let state = dir.path().join("state");
    let text = header("refused", broker.port, &state)
        + &secure_device(
            "plc",
            &server.endpoint(),
            "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n\
             trust_server_on_first_use = true\n",
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let own = state.join("pki/own/cert.der");
    let refused = observer
        .wait_for("the refusal", Duration::from_secs(30), |m| {
            error_contains(
                m,
                "refused",
                "plc",
                "temperature",
                "refused the gateway's certificate",
            )
        })
        .await;
    let error = refused.json["error"].as_str().unwrap();
    assert!(error.contains(&own.display().to_string()), "{error}");

    // The server's administrator trusts the file the message names.
    std::fs::copy(&own, clients.join("qis-edge.der")).unwrap();
    observer
        .wait_for("connected once trusted", Duration::from_secs(30), |m| {
            good_value(m, "refused", "plc", "temperature", 21.5)
        })
        .await;
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_client_certificate_is_set_aside_and_replaced() {
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let server = OpcUaServer::start(&dir.path().join("server"), &["--policies", "encrypt"]);
    let state = dir.path().join("state");
    for (sub, file) in [("own", "cert.der"), ("private", "private.pem")] {
        std::fs::create_dir_all(state.join("pki").join(sub)).unwrap();
        std::fs::write(state.join("pki").join(sub).join(file), b"half a certific").unwrap();
    }
    let text = header("corrupt", broker.port, &state)
        + &secure_device(
            "plc",
            &server.endpoint(),
            "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n\
             trust_server_on_first_use = true\n",
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    observer
        .wait_for(
            "connected with a new certificate",
            Duration::from_secs(30),
            |m| good_value(m, "corrupt", "plc", "temperature", 21.5),
        )
        .await;
    let own: Vec<String> = std::fs::read_dir(state.join("pki/own"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(own.contains(&"cert.der".to_string()), "{own:?}");
    assert!(
        own.iter().any(|f| f.starts_with("cert.der.corrupt-")),
        "{own:?}"
    );
    stop(gateway).await;
}

/// node-opcua's default certificate lists its application URI after its host names, and names
/// only the machine's host names and external addresses. Trusted, it is accepted by a device
/// that allows a host mismatch and refused, with what to do, by one that does not; with the
/// gateway as its own process, a clean stop with a live subscription logs no ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_default_certificates_are_checked_by_any_alternative_name() {
    use common::{gateway_binary, signal, NodeOpcUaServer};
    let broker = mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let server = NodeOpcUaServer::start(&dir.path().join("server"));
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("pki/trusted")).unwrap();
    std::fs::copy(
        server.certificate(),
        state.join("pki/trusted/node-opcua.pem"),
    )
    .unwrap();
    // 127.0.0.1 is never among the certificate's names: node-opcua lists external addresses.
    let endpoint = format!("opc.tcp://127.0.0.1:{}/", server.port);
    let keys = "security_policy = \"basic256sha256\"\nsecurity_mode = \"sign_and_encrypt\"\n";
    let device = |name: &str, extra: &str| {
        format!(
            "[[devices]]\ntype = \"opcua\"\nname = \"{name}\"\nendpoint = \"{endpoint}\"\n{keys}{extra}\
             interval_ms = 200\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\n\n\
             [[devices.points]]\nname = \"temperature\"\nnode = \"ns=1;s=Temperature\"\n\n\
             [[devices.points]]\nname = \"count\"\nnode = \"ns=1;s=Count\"\n\n"
        )
    };
    let text = header("node", broker.port, &state)
        + &device("lenient", "accept_host_mismatch = true\n")
        + &device("polled", "accept_host_mismatch = true\nread = \"poll\"\n")
        + &device("strict", "");
    let (_config_dir, config) = common::write_config(&text);
    let log = dir.path().join("gateway.log");
    let mut observer = Observer::connect(broker.port).await;
    let gateway = std::process::Command::new(gateway_binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(dir.path().join("gateway.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    for device in ["lenient", "polled"] {
        for (point, value) in [("temperature", 21.5), ("count", -42.0)] {
            observer
                .saw_or_wait_for(
                    &format!("{device}/{point} from node-opcua"),
                    Duration::from_secs(40),
                    |m| good_value(m, "node", device, point, value),
                )
                .await;
        }
    }
    let refused = observer
        .saw_or_wait_for("the host mismatch refused", Duration::from_secs(20), |m| {
            error_contains(m, "node", "strict", "temperature", "does not name the host")
        })
        .await;
    let error = refused.json["error"].as_str().unwrap();
    assert!(
        error.contains("(127.0.0.1)") && error.contains("accept_host_mismatch = true"),
        "{error}"
    );
    let named = error
        .split_once("it names ")
        .and_then(|(_, rest)| rest.split_once(". Use one"))
        .map(|(names, _)| names)
        .unwrap_or_else(|| panic!("the message lists the certificate's names: {error}"));
    assert!(!named.split(", ").any(|n| n == "127.0.0.1"), "{error}");
    signal(&gateway, "TERM");
    let mut gateway = gateway;
    let status = tokio::task::spawn_blocking(move || gateway.wait())
        .await
        .unwrap()
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "a clean stop logs no ERROR:\n{}",
        errors.join("\n")
    );
    assert!(
        !state.join("pki/rejected").read_dir().unwrap().any(|_| true),
        "a trusted certificate is not put in the rejected folder"
    );
}
