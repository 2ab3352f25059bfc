//! systemd integration: `READY=1` once the gateway runs, and `WATCHDOG=1` pings from the core
//! loop, so a stalled core is restarted by systemd (`WatchdogSec=` in the unit). Outside
//! systemd (`NOTIFY_SOCKET` unset) both are no-ops.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio::time::Instant;

/// Tells systemd the gateway is up.
pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

/// Pings the watchdog at half its period, if systemd asked for one.
pub struct Pinger {
    period: Option<Duration>,
    last: Instant,
}

impl Pinger {
    /// Reads `WATCHDOG_USEC` from the environment.
    pub fn from_env() -> Self {
        let mut usec = 0u64;
        let period =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        Self {
            period,
            last: Instant::now(),
        }
    }

    /// Pings if half the watchdog period has passed since the last ping.
    pub fn ping(&mut self) {
        if let Some(period) = self.period {
            if self.last.elapsed() >= period {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }
}
