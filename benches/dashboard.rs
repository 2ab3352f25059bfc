//! The dashboard's weight, memory and latency: the gzipped bytes a browser loads for each page
//! (the HTML of a gateway with 1 000 points, and the embedded assets), the resident memory of
//! 1 000 full point trends, and the time from a value change in a PLC (a tokio-modbus server
//! polled every 100 ms) to the open page's live fragment showing it, over 100 changes.
//! Run: `cargo bench --bench dashboard`.

use qis_edge::core::view::{Trend, TREND_BUCKETS};
use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

const POINTS: usize = 1000;

fn gzipped(bytes: &[u8]) -> usize {
    let mut child = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// One request over plain HTTP/1.1; the body.
fn get(port: u16, method: &str, path: &str, cookie: &str, body: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).to_string(),
        raw[split + 4..].to_vec(),
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn config(dir: &std::path::Path, web: u16, hash: &str) -> String {
    let mut text = format!(
        "[site]\nid = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nport = 1\n\
         [web]\nenabled = true\nbind = \"127.0.0.1:{web}\"\n\
         [[web.users]]\nname = \"b\"\nrole = \"engineer\"\npassword_hash = \"{hash}\"\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"127.0.0.1\"\nport = 1\n",
        dir.display()
    );
    for i in 0..POINTS {
        text += &format!(
            "[[devices.points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {}\nunit = \"°C\"\n\
             [[devices.points.alarms]]\nkind = \"high\"\nwarning = 70.0\nalarm = 80.0\n",
            i % 60000
        );
    }
    text
}

/// The gateway started on `runtime`, once its dashboard on `web` answers, and the session
/// cookie of user `b`; send on the first to stop it.
fn start(
    runtime: &tokio::runtime::Runtime,
    config: qis_edge::config::Config,
    web: u16,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), qis_edge::run::RunError>>,
    String,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = runtime.spawn(qis_edge::run(config, async move {
        let _ = stopped.await;
    }));
    while std::net::TcpStream::connect(("127.0.0.1", web)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (head, _) = get(web, "POST", "/login", "", "user=b&password=bench-password");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session")
        .to_string();
    (stop, gateway, cookie)
}

fn page_weight() {
    let dir = tempfile::tempdir().unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hash = qis_edge::web::hash_password("bench-password").unwrap();
    let config =
        qis_edge::config::parse_str(&config(dir.path(), web, &hash), "bench.toml").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, gateway, cookie) = start(&runtime, config, web);
    let asset = |name: &str| gzipped(&get(web, "GET", &format!("/assets/{name}"), "", "").1);
    let common = asset("app.js") + asset("style.css");
    let charts = asset("uplot.js") + asset("uplot.css");
    println!(
        "dashboard page weight, gzip -9, a gateway with {POINTS} points (HTML + assets it loads):"
    );
    for (page, extra) in [
        ("/", 0),
        ("/points", 0),
        ("/alarms", 0),
        ("/thresholds", 0),
        ("/history", 0),
        ("/point/d/p0", charts),
    ] {
        let (_, html) = get(web, "GET", page, &cookie, "");
        let total = gzipped(&html) + common + extra;
        println!(
            "  {page:<12} {:>7.1} KiB (HTML {:.1} KiB raw, {:.1} KiB gzipped; goal 150 KiB)",
            total as f64 / 1024.0,
            html.len() as f64 / 1024.0,
            gzipped(&html) as f64 / 1024.0
        );
    }
    let _ = stop.send(());
    let _ = runtime.block_on(gateway);
}

fn trend_memory() {
    let before = rss_kib();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut trends: Vec<Trend> = (0..POINTS).map(|_| Trend::new(60)).collect();
    for (i, t) in trends.iter_mut().enumerate() {
        for s in 0..TREND_BUCKETS as u64 * 10 {
            t.record(
                start + Duration::from_secs(s),
                (i as f64) + (s as f64).sin(),
            );
        }
    }
    let after = rss_kib();
    let full = trends
        .iter()
        .filter(|t| t.buckets().count() == TREND_BUCKETS)
        .count();
    println!(
        "trends: {POINTS} points × {TREND_BUCKETS} steps ({full} full): +{:.1} MiB resident (goal with the web server: ≤ 8 MiB)",
        after.saturating_sub(before) as f64 / 1024.0
    );
    // A dashboard snapshot shares the blocks; a value read afterwards copies one block.
    let snapshot = trends.clone();
    let shared = rss_kib();
    let later = start + Duration::from_secs(TREND_BUCKETS as u64 * 10 + 5);
    for t in trends.iter_mut() {
        t.record(later, 1.0);
    }
    let written = rss_kib();
    println!(
        "  a snapshot of them: +{:.2} MiB; one new value in each afterwards: +{:.2} MiB (a whole copy would be {:.1} MiB)",
        shared.saturating_sub(after) as f64 / 1024.0,
        written.saturating_sub(shared) as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0
    );
    drop(snapshot);
    drop(trends);
}

/// A PLC whose holding register 0 is whatever the bench last set.
#[derive(Clone)]
struct Register(std::sync::Arc<std::sync::atomic::AtomicU16>);

impl tokio_modbus::server::Service for Register {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<Result<Self::Response, Self::Exception>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        use std::sync::atomic::Ordering;
        std::future::ready(match req {
            tokio_modbus::Request::ReadHoldingRegisters(_, n) => {
                Ok(tokio_modbus::Response::ReadHoldingRegisters(vec![
                    self.0
                        .load(
                            Ordering::Relaxed
                        );
                    n as usize
                ]))
            }
            _ => Err(tokio_modbus::ExceptionCode::IllegalFunction),
        })
    }
}

/// The next Server-Sent Events `data` block from a chunked response, decoded.
struct Events {
    reader: std::io::BufReader<std::net::TcpStream>,
    text: String,
}

impl Events {
    fn next_data(&mut self) -> String {
        use std::io::BufRead;
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return data.join("\n");
                }
                continue;
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            std::io::Read::read_exact(&mut self.reader, &mut chunk).unwrap();
            self.text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
}

fn latency() {
    use std::sync::atomic::Ordering;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let register = Register(std::sync::Arc::new(std::sync::atomic::AtomicU16::new(1)));
    let plc = runtime
        .block_on(qis_edge::demo::plant::serve_on_free_port(
            register.clone(),
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hash = qis_edge::web::hash_password("bench-password").unwrap();
    let text = format!(
        "[site]\nid = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nport = 1\n\
         [web]\nenabled = true\nbind = \"127.0.0.1:{web}\"\n\
         [[web.users]]\nname = \"b\"\nrole = \"viewer\"\npassword_hash = \"{hash}\"\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {plc}\npoll_interval_ms = 100\n\
         [[devices.points]]\nname = \"v\"\nregister = \"holding\"\naddress = 0\n",
        dir.path().display()
    );
    let config = qis_edge::config::parse_str(&text, "bench.toml").unwrap();
    let (stop, gateway, cookie) = start(&runtime, config, web);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", web)).unwrap();
    write!(
        stream,
        "GET /live/points HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut events = Events {
        reader,
        text: String::new(),
    };
    let mut samples = Vec::new();
    for k in 0..101u16 {
        let value = 1000 + k;
        let set = std::time::Instant::now();
        register.0.store(value, Ordering::Relaxed);
        let want = format!("<td>{value} </td>");
        while !events.next_data().contains(&want) {}
        if k > 0 {
            samples.push(set.elapsed().as_secs_f64() * 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "PLC value change to the open page (poll 100 ms, {} changes): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal p99 ≤ 1 000 ms)",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1]
    );
    let _ = stop.send(());
    let _ = runtime.block_on(gateway);
}

/// A PLC of 100 holding registers whose values change on every read (each poll changes every
/// point: the most updates a page can get), served on `count` ports.
#[derive(Clone)]
struct Changing(std::sync::Arc<std::sync::atomic::AtomicU16>);

impl tokio_modbus::server::Service for Changing {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<Result<Self::Response, Self::Exception>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        let k = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::future::ready(match req {
            tokio_modbus::Request::ReadHoldingRegisters(a, n) => {
                Ok(tokio_modbus::Response::ReadHoldingRegisters(
                    (0..n).map(|i| 20 + (a + i + k) % 40).collect(),
                ))
            }
            _ => Err(tokio_modbus::ExceptionCode::IllegalFunction),
        })
    }
}

/// CPU seconds (user + system) and resident KiB of process `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); here counted from field 3.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    (ticks / hz, rss)
}

/// 20 open dashboards on a gateway of 1 000 points (10 devices × 100, polled every 100 ms,
/// every value changing at every poll): the gateway (the release binary, a child process, so
/// only its CPU counts) with 20 live streams of a page open against none, in alternating
/// windows; and its resident memory with the dashboard on against off.
fn open_dashboards() {
    const DEVICES: usize = 10;
    const STREAMS: usize = 20;
    const WINDOW: Duration = Duration::from_secs(6);
    const ROUNDS: usize = 3;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ports: Vec<u16> = runtime.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..DEVICES {
            let service = Changing(Default::default());
            let cancel = tokio_util::sync::CancellationToken::new();
            let address = qis_edge::demo::plant::serve_on_free_port(service, cancel)
                .await
                .unwrap();
            ports.push(address.port());
        }
        ports
    });
    let hash = qis_edge::web::hash_password("bench-password").unwrap();
    let gateway = |web: Option<u16>| {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[site]\nid = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nport = 1\n",
            dir.path().join("state").display()
        );
        if let Some(web) = web {
            text += &format!(
                "[web]\nenabled = true\nbind = \"127.0.0.1:{web}\"\n\
                 [[web.users]]\nname = \"b\"\nrole = \"viewer\"\npassword_hash = \"{hash}\"\n"
            );
        }
        for (d, port) in ports.iter().enumerate() {
            text += &format!(
                "[[devices]]\ntype = \"modbus_tcp\"\nname = \"d{d}\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_interval_ms = 100\n"
            );
            for i in 0..100 {
                text += &format!(
                    "[[devices.points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {i}\nunit = \"°C\"\n\
                     [[devices.points.alarms]]\nkind = \"high\"\nwarning = 70.0\nalarm = 80.0\n"
                );
            }
        }
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_qis-edge"))
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (dir, child)
    };
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, mut child) = gateway(Some(web));
    while std::net::TcpStream::connect(("127.0.0.1", web)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (_, started) = usage(child.id());
    let (head, _) = get(web, "POST", "/login", "", "user=b&password=bench-password");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session")
        .to_string();
    let pid = child.id();
    let (_, logged_in) = usage(pid);
    let mut after_page = Vec::new();
    let cpu_over = |window: Duration| {
        let (a, _) = usage(pid);
        std::thread::sleep(window);
        let (b, _) = usage(pid);
        (b - a) / window.as_secs_f64()
    };
    println!(
        "20 open dashboards, gateway of 1 000 points (10 × 100, polled every 100 ms, every value changing), {ROUNDS} alternating rounds of {} s:",
        WINDOW.as_secs()
    );
    for page in ["overview", "alarms", "points"] {
        let mut extra = Vec::new();
        let mut bytes_per_s = Vec::new();
        for _ in 0..ROUNDS {
            let idle = cpu_over(WINDOW);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let readers: Vec<_> = (0..STREAMS)
                .map(|_| {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", web)).unwrap();
                    write!(
                        s,
                        "GET /live/{page} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
                    )
                    .unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let (stop, read) = (stop.clone(), read.clone());
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            if let Ok(n) = s.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(500));
            let before = read.load(std::sync::atomic::Ordering::Relaxed);
            let open = cpu_over(WINDOW);
            let after = read.load(std::sync::atomic::Ordering::Relaxed);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            readers.into_iter().for_each(|r| r.join().unwrap());
            extra.push((open - idle) * 100.0);
            bytes_per_s.push((after - before) as f64 / WINDOW.as_secs_f64() / STREAMS as f64);
        }
        let mut sorted = extra.clone();
        sorted.sort_by(f64::total_cmp);
        bytes_per_s.sort_by(f64::total_cmp);
        println!(
            "  /{page}: +{:.1} % of one core (median; rounds {}), {:.0} KiB/s to each page (goal ≤ 5 %)",
            sorted[ROUNDS / 2],
            extra
                .iter()
                .map(|e| format!("{e:+.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            bytes_per_s[ROUNDS / 2] / 1024.0
        );
        after_page.push(format!("{page} {:.1}", usage(pid).1 as f64 / 1024.0));
    }
    let (_, with_web) = usage(pid);
    let _ = child.kill();
    let _ = child.wait();
    let (_dir, mut plain) = gateway(None);
    std::thread::sleep(Duration::from_secs(3));
    let (_, without_web) = usage(plain.id());
    let _ = plain.kill();
    let _ = plain.wait();
    println!(
        "  resident memory with the dashboard: started {:.1} MiB, logged in {:.1} MiB, after the streams of each page (MiB): {}",
        started as f64 / 1024.0,
        logged_in as f64 / 1024.0,
        after_page.join(", ")
    );
    println!(
        "  resident memory with the dashboard (after the streams, trends of 60 min partly filled) {:.1} MiB, without {:.1} MiB: +{:.1} MiB (full trends: see above; goal with the web server ≤ 8 MiB)",
        with_web as f64 / 1024.0,
        without_web as f64 / 1024.0,
        (with_web as f64 - without_web as f64) / 1024.0
    );
}

fn main() {
    // `cargo bench --bench dashboard -- open` runs only the open dashboards.
    if std::env::args().any(|a| a == "open") {
        return open_dashboards();
    }
    trend_memory();
    page_weight();
    latency();
    open_dashboards();
}
