//! The core task: waits for the next input, hands it to the [`Core`] with the time, and carries
//! out what comes back: publications to the local broker, acknowledgements to the uplink once
//! the core has saved what they account for, and a wake for the outbox.

use crate::core::{Core, Drained, Input, Now, TICK};
use crate::mqtt::local::{Inbound, Publisher};
use crate::mqtt::uplink::{Ack, Incoming};
use crate::mqtt::UplinkState;
use crate::sources::SourceEvent;
use crate::web::{Live, WebCommand};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Peers' packets handled and not yet acknowledged, at most.
pub const MAX_HELD_ACKS: usize = 1024;

/// Where the core's inputs come from and its outputs go.
pub struct Channels {
    /// Samples and device reports.
    pub events: mpsc::Receiver<SourceEvent>,
    /// Engineers' commands.
    pub commands: mpsc::Receiver<Inbound>,
    /// Peers' packets.
    pub peers: mpsc::Receiver<Incoming>,
    /// Bumped on every connection to the local broker.
    pub connections: watch::Receiver<u64>,
    /// Whether the local broker is connected (for the dashboard).
    pub local_up: watch::Receiver<bool>,
    /// The uplink's state.
    pub uplink: watch::Receiver<UplinkState>,
    /// Packets waiting in the outbox (for the dashboard).
    pub outbox: watch::Receiver<Option<usize>>,
    /// The local broker.
    pub publisher: Publisher,
    /// Tells the uplink a packet waits in the outbox.
    pub wake: mpsc::Sender<()>,
    /// The dashboard, when enabled.
    pub web: Option<Dashboard>,
}

/// The dashboard's side of the core task: its commands, and the live state it shows.
pub struct Dashboard {
    /// Commands from the page.
    pub commands: mpsc::Receiver<WebCommand>,
    /// The read model, replaced at the next tick after anything changed.
    pub live: watch::Sender<Arc<Live>>,
    /// When it was last replaced.
    replaced: std::cell::Cell<std::time::Instant>,
    /// Replace it at every tick that changed something (the Sparkplug edge node reports by
    /// exception from it), not only while a page watches.
    pub every_tick: bool,
}

/// How often the read model is replaced while no page is open (a page then loads a snapshot
/// at most this old; an open page gets every tick's).
const IDLE_SNAPSHOT: std::time::Duration = std::time::Duration::from_secs(2);

impl Dashboard {
    /// The channels for a dashboard: this side, and the receiver and sender its server uses.
    pub fn new(initial: Live) -> (Self, watch::Receiver<Arc<Live>>, mpsc::Sender<WebCommand>) {
        let (tx, commands) = mpsc::channel(crate::web::COMMAND_CAPACITY);
        let (live, rx) = watch::channel(Arc::new(initial));
        let replaced = std::cell::Cell::new(std::time::Instant::now());
        (
            Self {
                commands,
                live,
                replaced,
                every_tick: false,
            },
            rx,
            tx,
        )
    }

    /// Whether to replace the read model now: at every tick while a page watches it (the
    /// server itself holds one receiver), otherwise every [`IDLE_SNAPSHOT`].
    fn due(&self) -> bool {
        let now = std::time::Instant::now();
        let due = self.every_tick
            || self.live.receiver_count() > 1
            || now.duration_since(self.replaced.get()) >= IDLE_SNAPSHOT;
        if due {
            self.replaced.set(now);
        }
        due
    }
}

/// What the dashboard shows of `core` now, with the local broker's and the outbox's state.
pub fn snapshot(
    core: &Core,
    local_up: &watch::Receiver<bool>,
    outbox: &watch::Receiver<Option<usize>>,
) -> Live {
    Live {
        view: core.view(),
        storage_fault: core.storage_fault().map(str::to_string),
        local_broker: *local_up.borrow(),
        outbox: *outbox.borrow(),
        at: std::time::SystemTime::now(),
    }
}

/// The next command from the dashboard; never, without one.
async fn web_command(web: &mut Option<Dashboard>) -> Option<WebCommand> {
    match web {
        Some(w) => w.commands.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the core until cancelled; then saves, publishes `offline` and disconnects.
pub async fn run(mut core: Core, mut ch: Channels, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    let mut watchdog = crate::watchdog::Pinger::from_env();
    // Peers' packets handed to the core and not yet acknowledged.
    let mut acks: Vec<Ack> = Vec::new();
    deliver(core.drain(), &ch, &mut acks, None);
    // Whether anything changed since the dashboard's last snapshot.
    let mut changed = false;
    loop {
        // The acknowledgement owed for the packet this input carries, if it is one.
        let mut last: Option<Ack> = None;
        // Where to say what became of a command from the dashboard.
        let mut reply: Option<oneshot::Sender<Result<(), String>>> = None;
        let input = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(event) = ch.events.recv() => Input::Source(event),
            Some(m) = ch.commands.recv() => Input::Command { topic: m.topic, payload: m.payload },
            Some(c) = web_command(&mut ch.web) => {
                reply = Some(c.reply);
                Input::Command { topic: c.topic, payload: c.payload.into() }
            }
            // While acknowledgements cannot be released (storage fault), stop taking peers'
            // packets beyond a bound: the uplink then stops reading and the broker keeps them.
            Some(p) = ch.peers.recv(), if acks.len() < MAX_HELD_ACKS => {
                last = p.ack;
                Input::Peer { topic: p.topic, payload: p.payload, retained: p.retained }
            }
            Ok(()) = ch.connections.changed() => Input::Reconnected,
            Ok(()) = ch.uplink.changed() => Input::Uplink(*ch.uplink.borrow_and_update()),
            Ok(()) = ch.local_up.changed() => {
                ch.local_up.borrow_and_update();
                if let Some(web) = &ch.web {
                    web.live.send_replace(Arc::new(snapshot(&core, &ch.local_up, &ch.outbox)));
                }
                continue;
            }
            Ok(()) = ch.outbox.changed() => {
                ch.outbox.borrow_and_update();
                changed = true;
                continue;
            }
            _ = tick.tick() => {
                watchdog.ping();
                Input::Tick
            }
        };
        let tick = matches!(input, Input::Tick);
        // A sample changes the read model even when its metric waits for the rate limit.
        changed |= matches!(input, Input::Source(_));
        core.handle(input, Now::current());
        let mut out = core.drain();
        if let (Some(reply), Some(result)) = (reply, out.command.take()) {
            let _ = reply.send(result);
        }
        changed |= !out.publications.is_empty();
        deliver(out, &ch, &mut acks, last);
        if let Some(web) = ch.web.as_ref().filter(|w| tick && changed && w.due()) {
            web.live
                .send_replace(Arc::new(snapshot(&core, &ch.local_up, &ch.outbox)));
            changed = false;
        }
    }
    core.handle(Input::Shutdown, Now::current());
    deliver(core.drain(), &ch, &mut acks, None);
    ch.publisher.disconnect();
}

/// Carries out what the core asked for; `last` is the acknowledgement owed for the input just
/// handled.
fn deliver(out: Drained, ch: &Channels, acks: &mut Vec<Ack>, last: Option<Ack>) {
    for p in out.publications {
        ch.publisher.send(p);
    }
    match last {
        Some(ack) if out.ack_last => ack.send(),
        Some(ack) => acks.push(ack),
        None => {}
    }
    if out.release_acks {
        acks.drain(..).for_each(Ack::send);
    }
    if out.wake_uplink {
        let _ = ch.wake.try_send(());
    }
}
