//! The health of the machine the gateway runs on, for the overview: CPU use, memory, the
//! gateway's own memory, the free space where its state lives, and the SoC temperature where
//! `/sys/class/thermal` has one. Read from `/proc` and `/sys` at most every few seconds.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reading is reused.
const REFRESH: Duration = Duration::from_secs(2);

/// One reading; a field is `None` where the machine does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// CPU busy since the previous reading, percent of all cores.
    pub cpu_percent: Option<f64>,
    /// 1-minute load average.
    pub load_1m: Option<f64>,
    /// Memory available and in all, bytes.
    pub memory: Option<(u64, u64)>,
    /// The gateway's resident memory, bytes.
    pub gateway_rss: Option<u64>,
    /// Free and total bytes of the state directory's filesystem.
    pub disk: Option<(u64, u64)>,
    /// The first thermal zone's temperature, °C.
    pub temperature_c: Option<f64>,
}

/// The last reading: when, the CPU's (busy, total) jiffies then, and what it said.
type Reading = (Instant, (u64, u64), Health);

/// Takes and caches readings.
#[derive(Debug)]
pub struct Host {
    state_dir: PathBuf,
    last: Mutex<Option<Reading>>,
}

impl Host {
    /// Readings for a gateway with its state in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            last: Mutex::new(None),
        }
    }

    /// The latest reading, taken anew when the last is older than a moment.
    pub fn health(&self) -> Health {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((at, _, h)) = last.as_ref() {
            if now.duration_since(*at) < REFRESH {
                return h.clone();
            }
        }
        let cpu = cpu_times();
        let cpu_percent = match (last.as_ref(), cpu) {
            (Some((_, (busy0, total0), _)), Some((busy, total))) if total > *total0 => {
                Some(100.0 * busy.saturating_sub(*busy0) as f64 / (total - total0) as f64)
            }
            _ => None,
        };
        let health = Health {
            cpu_percent,
            load_1m: read("/proc/loadavg")
                .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok())),
            memory: meminfo(),
            gateway_rss: read("/proc/self/status").and_then(|t| kib(&t, "VmRSS:")),
            disk: disk(&self.state_dir),
            temperature_c: read("/sys/class/thermal/thermal_zone0/temp")
                .and_then(|t| t.trim().parse::<f64>().ok())
                .map(|m| m / 1000.0),
        };
        *last = Some((now, cpu.unwrap_or_default(), health.clone()));
        health
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// (busy, total) jiffies of all CPUs.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = read("/proc/stat")?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The value in bytes of a `Name:   123 kB` line.
fn kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let n: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(n * 1024)
}

fn meminfo() -> Option<(u64, u64)> {
    let text = read("/proc/meminfo")?;
    Some((kib(&text, "MemAvailable:")?, kib(&text, "MemTotal:")?))
}

fn disk(dir: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let unit = s.fragment_size() as u64;
    Some((s.blocks_available() as u64 * unit, s.blocks() as u64 * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_its_health() {
        let host = Host::new(Path::new("/tmp"));
        let first = host.health();
        let (available, total) = first.memory.expect("/proc/meminfo");
        assert!(available <= total && total > 0);
        assert!(first.gateway_rss.is_some_and(|r| r > 0));
        let (free, size) = first.disk.expect("statvfs of /tmp");
        assert!(free <= size && size > 0);
        assert!(first.load_1m.is_some());
        assert_eq!(host.health(), first, "reused within the refresh interval");
        assert_eq!(
            kib("MemTotal:     2048 kB\n", "MemTotal:"),
            Some(2048 * 1024)
        );
    }
}
