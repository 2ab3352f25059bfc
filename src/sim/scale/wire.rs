//! What a scale run needs around the gateways: a PLC with one register per plant, a TCP proxy
//! that counts a plant's uplink bytes, and the process figures (CPU, memory) it reads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;

/// A PLC of holding registers, one per plant, that the run writes.
#[derive(Clone)]
pub struct Plc {
    image: Arc<Mutex<Vec<u16>>>,
}

impl Plc {
    pub fn new(registers: usize, value: u16) -> Self {
        Self {
            image: Arc::new(Mutex::new(vec![value; registers])),
        }
    }

    pub fn set(&self, register: usize, value: u16) {
        if let Ok(mut image) = self.image.lock() {
            if let Some(r) = image.get_mut(register) {
                *r = value;
            }
        }
    }
}

impl tokio_modbus::server::Service for Plc {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        let Request::ReadHoldingRegisters(address, count) = request else {
            return std::future::ready(Err(ExceptionCode::IllegalFunction));
        };
        let (start, end) = (
            usize::from(address),
            usize::from(address) + usize::from(count),
        );
        let words = self.image.lock().ok().and_then(|image| {
            (count > 0 && count <= 125 && end <= image.len()).then(|| image[start..end].to_vec())
        });
        std::future::ready(
            words
                .map(Response::ReadHoldingRegisters)
                .ok_or(ExceptionCode::IllegalDataAddress),
        )
    }
}

/// Bytes a proxied plant sent to the fleet broker and received from it.
#[derive(Debug, Default)]
pub struct Bytes {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

impl Bytes {
    pub fn read(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// A loopback proxy to `target` that counts the bytes each way; returns where it listens.
pub async fn proxy(
    target: SocketAddr,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, Arc<Bytes>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let bytes = Arc::new(Bytes::default());
    let counted = Arc::clone(&bytes);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((client, _)) = accepted else { continue };
            let Ok(broker) = TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (br, bw) = broker.into_split();
            tokio::spawn(pump(cr, bw, Arc::clone(&counted), true));
            tokio::spawn(pump(br, cw, Arc::clone(&counted), false));
        }
    });
    Ok((address, bytes))
}

/// Copies one direction, counting.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<Bytes>,
    up: bool,
) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let counter = if up { &bytes.up } else { &bytes.down };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

/// CPU seconds (user + system) process `pid` has used, from /proc; `None` where it is gone.
pub fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces), from field 3 on: utime is 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / hz.max(1) as f64)
}

/// This process's resident memory, KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_s("self").is_some_and(|s| s >= 0.0));
        assert!(rss_kib() > 0);
        assert!(cpu_s("0").is_none());
    }
}
