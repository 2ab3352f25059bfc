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
        .filter(|t| t.buckets.len() == TREND_BUCKETS)
        .count();
    println!(
        "trends: {POINTS} points × {TREND_BUCKETS} steps ({full} full): +{:.1} MiB resident (goal with the web server: ≤ 8 MiB)",
        after.saturating_sub(before) as f64 / 1024.0
    );
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
    let plc = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let service = register.clone();
        tokio::spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = move |stream, peer| {
                let service = service.clone();
                let accepted =
                    tokio_modbus::server::tcp::accept_tcp_connection(stream, peer, move |_| {
                        Ok(Some(service.clone()))
                    });
                async move { accepted }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
        port
    });
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

fn main() {
    trend_memory();
    page_weight();
    latency();
}
