//! What a scale run measured, as JSON (`scale.json`) and Markdown.

use super::shape::Shape;
use super::{Cpu, ScaleArgs};
use serde::Serialize;
use std::fmt::Write;

/// One confirmation's journey.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub source: String,
    /// Plants that must apply it, and those that did within the limit.
    pub expected: usize,
    pub delivered: usize,
    /// Confirmation to applied, at each plant that applied it, ms.
    pub latencies_ms: Vec<f64>,
    /// The plants that applied it, in site order.
    pub reached: Vec<String>,
    /// Bytes the source sent to the fleet broker meanwhile (its packet, acknowledgements).
    pub uplink_bytes_sent: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub plants: usize,
    pub confirmations_asked: usize,
    /// Receivers by the level they accept: (level, plants, of which hear at least one source).
    pub levels: Vec<(String, usize, usize)>,
    /// Time until every plant's uplink had subscribed, s.
    pub start_s: f64,
    /// This process's memory before the gateways and with them all running, KiB.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_per_plant_kib: f64,
    pub confirmations: Vec<Delivery>,
    /// CPU per confirmation, ms: the broker's processes (when given) and this process.
    pub broker_cpu_ms_per_confirmation: Option<f64>,
    pub own_cpu_ms_per_confirmation: f64,
    /// Counted receivers: bytes received from the fleet broker per packet applied.
    pub receiver_bytes_per_packet: Option<f64>,
    /// The joiner: live packets it had to receive, received, and the time to all of them.
    pub joiner_expected: usize,
    pub joiner_received: usize,
    pub joiner_ms: Option<f64>,
    /// (plant, source) pairs where a packet arrived that its level should have kept out.
    pub misrouted: usize,
}

impl Figures {
    pub fn new(
        args: &ScaleArgs,
        shapes: &[Shape],
        start_s: f64,
        rss_before_kib: u64,
        rss_after_kib: u64,
    ) -> Self {
        let levels = crate::packet::MatchLevel::ALL
            .iter()
            .map(|l| {
                let at: Vec<&Shape> = shapes
                    .iter()
                    .filter(|s| !s.source && s.level == *l)
                    .collect();
                let hearing = at
                    .iter()
                    .filter(|r| shapes.iter().any(|s| s.source && r.hears(s)))
                    .count();
                (l.as_str().to_string(), at.len(), hearing)
            })
            .collect();
        Self {
            plants: args.plants,
            confirmations_asked: args.confirmations,
            levels,
            start_s,
            rss_before_kib,
            rss_after_kib,
            rss_per_plant_kib: rss_after_kib.saturating_sub(rss_before_kib) as f64
                / args.plants as f64,
            confirmations: Vec::new(),
            broker_cpu_ms_per_confirmation: None,
            own_cpu_ms_per_confirmation: 0.0,
            receiver_bytes_per_packet: None,
            joiner_expected: 0,
            joiner_received: 0,
            joiner_ms: None,
            misrouted: 0,
        }
    }

    pub fn cpu(&mut self, before: &Cpu, after: &Cpu, confirmations: usize) {
        let n = confirmations.max(1) as f64;
        self.broker_cpu_ms_per_confirmation = before
            .broker
            .zip(after.broker)
            .map(|(b, a)| (a - b) * 1000.0 / n);
        self.own_cpu_ms_per_confirmation = (after.own - before.own) * 1000.0 / n;
    }

    /// Receivers as (shape, bytes received while the sources confirmed, packets applied);
    /// the uncounted ones received no bytes here.
    pub fn receivers(&mut self, receivers: &[(Shape, u64, usize)]) {
        let (bytes, packets) = receivers
            .iter()
            .filter(|(_, b, _)| *b > 0)
            .fold((0u64, 0usize), |(b, p), (_, bytes, n)| (b + bytes, p + n));
        self.receiver_bytes_per_packet = (packets > 0).then(|| bytes as f64 / packets as f64);
    }

    pub fn joined(&mut self, expected: usize, received: usize, ms: Option<f64>) {
        self.joiner_expected = expected;
        self.joiner_received = received;
        self.joiner_ms = ms;
    }

    /// Every latency of every confirmation.
    pub fn latencies(&self) -> Vec<f64> {
        let mut all: Vec<f64> = self
            .confirmations
            .iter()
            .flat_map(|d| d.latencies_ms.iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        all
    }

    pub fn expected(&self) -> usize {
        self.confirmations.iter().map(|d| d.expected).sum()
    }

    pub fn delivered(&self) -> usize {
        self.confirmations.iter().map(|d| d.delivered).sum()
    }

    /// Mean bytes a source sent to the fleet broker per confirmation.
    pub fn source_bytes(&self) -> Option<f64> {
        let sent: Vec<u64> = self
            .confirmations
            .iter()
            .filter_map(|d| d.uplink_bytes_sent)
            .collect();
        (!sent.is_empty()).then(|| sent.iter().sum::<u64>() as f64 / sent.len() as f64)
    }
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.0}"))
}

/// The report in Markdown.
pub fn markdown(f: &Figures) -> String {
    let l = f.latencies();
    let mut t = format!(
        "# Scale run: {} plants, {} confirmations\n\n\
         | figure | value |\n|---|---|\n\
         | deliveries (plants that must apply a confirmation) | {} of {} |\n\
         | misrouted (applied where its level keeps it out) | {} |\n\
         | confirmation → applied, p50 / p99 / max | {} / {} / {} ms |\n\
         | fleet-link bytes sent by the source per confirmation | {} |\n\
         | fleet-link bytes received per packet applied (sampled receivers) | {} |\n\
         | broker CPU per confirmation | {} |\n\
         | this process's CPU per confirmation (all gateways) | {:.1} ms |\n\
         | memory per gateway instance (RSS growth / plants) | {:.0} KiB |\n\
         | start until every uplink subscribed | {:.1} s |\n\
         | late joiner: live packets held | {} of {} in {} ms |\n\n",
        f.plants,
        f.confirmations.len(),
        f.delivered(),
        f.expected(),
        f.misrouted,
        ms(quantile(&l, 0.5)),
        ms(quantile(&l, 0.99)),
        ms(l.last().copied()),
        f.source_bytes().map_or("–".into(), |b| format!("{b:.0} B")),
        f.receiver_bytes_per_packet
            .map_or("–".into(), |b| format!("{b:.0} B")),
        f.broker_cpu_ms_per_confirmation
            .map_or("not measured (give --broker-pid)".into(), |c| format!(
                "{c:.1} ms"
            )),
        f.own_cpu_ms_per_confirmation,
        f.rss_per_plant_kib,
        f.start_s,
        f.joiner_received,
        f.joiner_expected,
        ms(f.joiner_ms),
    );
    t.push_str("| receivers accepting | plants | hearing a source |\n|---|---|---|\n");
    for (level, n, hearing) in &f.levels {
        let _ = writeln!(t, "| {level} | {n} | {hearing} |");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
