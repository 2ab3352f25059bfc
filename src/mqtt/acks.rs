//! Acknowledgements of peers' packets. The core releases them once what the packets changed
//! is committed; one task hands them to the uplink's connection in the order the packets came
//! (as MQTT requires), waiting for room rather than dropping one when the connection's request
//! queue is full (it is while the uplink holds back reading under flow control).

use rumqttc::{AsyncClient, Publish};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::warn;

/// Hands out [`Ack`]s for one connection and forwards them.
#[derive(Debug, Clone)]
pub struct Acks {
    tx: mpsc::UnboundedSender<Publish>,
    pending: Arc<AtomicUsize>,
}

/// PUBACKs that could not be sent (the connection was gone), since start.
static FAILED: AtomicU64 = AtomicU64::new(0);

/// PUBACKs for peers' packets that could not be sent, since start: the broker delivers those
/// packets again on the next connection, and the replay memory makes that harmless.
pub fn failed() -> u64 {
    FAILED.load(Ordering::Relaxed)
}

impl Acks {
    /// Starts the forwarding task for `client`'s connection.
    pub fn start(client: AsyncClient) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();
        let pending = Arc::new(AtomicUsize::new(0));
        let count = pending.clone();
        tokio::spawn(async move {
            while let Some(publish) = rx.recv().await {
                if let Err(e) = client.ack(&publish).await {
                    let n = FAILED.fetch_add(1, Ordering::Relaxed) + 1;
                    if n == 1 || n.is_power_of_two() {
                        warn!(error = %e, failed = n, "A peer packet's PUBACK could not be sent; the broker delivers it again on the next connection.");
                    }
                }
                count.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Self { tx, pending }
    }

    /// The acknowledgement owed for `publish`.
    pub fn ack_for(&self, publish: Publish) -> Ack {
        Ack {
            acks: self.clone(),
            publish,
        }
    }

    /// Acknowledgements released and not yet handed to the connection.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// The PUBACK owed for an incoming packet.
#[derive(Debug)]
pub struct Ack {
    acks: Acks,
    publish: Publish,
}

impl Ack {
    /// Sends the PUBACK, after every one released before it.
    pub fn send(self) {
        self.acks.pending.fetch_add(1, Ordering::SeqCst);
        if self.acks.tx.send(self.publish).is_err() {
            self.acks.pending.fetch_sub(1, Ordering::SeqCst);
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
    }
}
