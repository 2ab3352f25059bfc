//! Polling cost: 1 000 points over 10 Modbus TCP devices every 100 ms (and over 50 devices of
//! 20 points, and one device of 1 000), through the gateway's
//! pollers (batching, decoding, samples to the core) and through a bare tokio-modbus loop
//! issuing the same requests. Prints CPU time per second of each, requests per poll, and their
//! ratio. The servers run in a child process (on ports it picks and reports) so only the client
//! side is measured. The two loops run in turn, five rounds each, and the median of the
//! per-round ratios is reported, so a machine whose load drifts affects both alike.
//! `cargo bench --bench polling` (takes about 4 minutes).

mod side;
use side::median;

use qis_edge::config::{
    ByteOrder, DataType, ModbusTcpConfig, PointAddress, PointConfig, RegisterAddress, RegisterKind,
};
use qis_edge::sources::modbus::unit::plan_batches;
use qis_edge::sources::modbus::ModbusTcpPoller;
use qis_edge::sources::SourceEvent;
use std::future::Ready;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_modbus::client::Reader;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use tokio_util::sync::CancellationToken;

/// (devices, points per device): the same 1 000 points in three shapes, and one device.
const SHAPES: [(usize, usize); 3] = [(10, 100), (50, 20), (1, 1000)];
/// Servers started: enough for the widest shape.
const SERVERS: usize = 50;
const RUN: Duration = Duration::from_secs(5);
const ROUNDS: usize = 5;

#[derive(Clone)]
struct Zeros;

impl tokio_modbus::server::Service for Zeros {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;
    fn call(&self, req: Request<'static>) -> Self::Future {
        std::future::ready(match req {
            // Words near 0x4120 decode to ordinary values (f32 pairs about 10.1), as process
            // values are; counting addresses would make every f32 a subnormal.
            Request::ReadHoldingRegisters(a, n) => Ok(Response::ReadHoldingRegisters(
                (0..n).map(|i| 0x4120 + (a.wrapping_add(i) % 16)).collect(),
            )),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

async fn serve() {
    let mut ports = Vec::new();
    for _ in 0..SERVERS {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        ports.push(listener.local_addr().expect("port").port().to_string());
        tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream, peer| {
                let accepted = accept_tcp_connection(stream, peer, |_: SocketAddr| Ok(Some(Zeros)));
                async move { accepted }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
    }
    println!("{}", ports.join(" "));
    std::future::pending::<()>().await;
}

/// `n` points per device: u16 and f32 every other register, three registers apart.
fn points(n: usize) -> Vec<PointConfig> {
    (0..n)
        .map(|i| PointConfig {
            name: format!("p{i}"),
            address: PointAddress::Register(RegisterAddress {
                register: RegisterKind::Holding,
                address: (i * 3) as u16,
                data_type: if i % 2 == 0 {
                    DataType::U16
                } else {
                    DataType::F32
                },
                byte_order: ByteOrder::Abcd,
                bit: None,
                length: None,
            }),
            scale: 0.1,
            offset: 0.0,
            unit: String::new(),
            alarms: Vec::new(),
            spc: None,
            context: None,
        })
        .collect()
}

fn device(d: usize, port: u16, points_per_device: usize) -> ModbusTcpConfig {
    let text = format!("name = \"d{d}\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_interval_ms = 100\ntimeout_ms = 1000\n");
    let mut c: ModbusTcpConfig = toml::from_str(&text).expect("device");
    c.points = points(points_per_device);
    c
}

/// User + system CPU seconds of this process so far, to the nanosecond
/// (`CLOCK_PROCESS_CPUTIME_ID`; `/proc/self/stat` counts only in 10 ms ticks).
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

async fn gateway_loop(ports: &[u16], points_per_device: usize) -> (f64, u64) {
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    for (d, port) in ports.iter().enumerate() {
        let config = device(d, *port, points_per_device);
        tokio::spawn(ModbusTcpPoller::new(d, config, tx.clone()).run(cancel.clone()));
    }
    drop(tx);
    let samples = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(e) = rx.recv().await {
            match e {
                SourceEvent::Sample(_) => n += 1,
                SourceEvent::Samples(s) => n += s.len() as u64,
                _ => {}
            }
        }
        n
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(RUN).await;
    let (cpu, elapsed) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    cancel.cancel();
    let n = samples.await.unwrap_or(0);
    (cpu / elapsed, n)
}

async fn bare_loop(requests: &[(u16, u16)], ports: &[u16]) -> f64 {
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    for port in ports {
        let requests = requests.to_vec();
        let cancel = cancel.clone();
        let port = *port;
        tasks.push(tokio::spawn(async move {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, Slave(1))
                .await
                .expect("connect");
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                for (start, count) in &requests {
                    match ctx.read_holding_registers(*start, *count).await {
                        Ok(Ok(words)) => {
                            std::hint::black_box(words);
                        }
                        other => panic!("{start}+{count}: {other:?}"),
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(RUN).await;
    let result = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    cancel.cancel();
    for task in tasks {
        let _ = task.await;
    }
    result
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(serve());
        return;
    }
    let me = std::env::current_exe().expect("own path");
    let mut servers = std::process::Command::new(me)
        .arg("--serve")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("servers");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(servers.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the servers' ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    assert_eq!(ports.len(), SERVERS, "ports: {line}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut summary = Vec::new();
    for (devices, per_device) in SHAPES {
        let batches = plan_batches(&points(per_device), 125, 2000, 8);
        let requests: Vec<(u16, u16)> = batches.iter().map(|b| (b.start, b.count)).collect();
        let ports = &ports[..devices];
        println!("{devices} devices × {per_device} points every 100 ms, {} requests per device per poll ({} per poll in all)", requests.len(), requests.len() * devices);
        let (mut ratios, mut gateway, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            // Alternating which side goes first.
            let (g, b) = if round % 2 == 1 {
                let g = rt.block_on(gateway_loop(ports, per_device));
                (g, rt.block_on(bare_loop(&requests, ports)))
            } else {
                let b = rt.block_on(bare_loop(&requests, ports));
                (rt.block_on(gateway_loop(ports, per_device)), b)
            };
            let ((gateway_cpu, samples), bare_cpu) = (g, b);
            let ratio = gateway_cpu / bare_cpu.max(1e-9);
            println!(
                "  round {round}: gateway pollers {:.1} ms CPU/s ({samples} samples in {:.0} s + 1 s warm-up), bare tokio-modbus {:.1} ms CPU/s, ratio {ratio:.2}",
                gateway_cpu * 1000.0,
                RUN.as_secs_f64(),
                bare_cpu * 1000.0
            );
            ratios.push(ratio);
            gateway.push(gateway_cpu * 1000.0);
            bare.push(bare_cpu * 1000.0);
        }
        let (r, rlo, rhi) = median(ratios);
        let (g, _, _) = median(gateway);
        let (b, _, _) = median(bare);
        println!("  ratio gateway / bare, median of {ROUNDS} rounds: {r:.2} [{rlo:.2}–{rhi:.2}]");
        summary.push((devices, per_device, g, b, r));
    }
    let (g0, b0) = (summary[0].2, summary[0].3);
    for (devices, per_device, g, b, r) in &summary {
        println!(
            "{devices:>3} × {per_device:>4}: gateway {g:.1} ms CPU/s ({:.2}× the 10 × 100 shape), bare {b:.1} ({:.2}×), gateway / bare {r:.2}",
            g / g0,
            b / b0
        );
    }
    let _ = servers.kill();
    let _ = servers.wait();
}
