//! The packet path, forward in one handler: intake verifies → adaptation offers it to the rules
//! of its target → their new levels go to the rules → thresholds and a `peer_outcome` event
//! out. The acknowledgement is released once intake's tables are committed.

use super::points::Points;
use super::{view, Core, Now};
use crate::alarms::RuleId;
use crate::config::AlarmKind;
use crate::mqtt::payload::{timestamp, Event, Threshold, PROVENANCE_SHOWN};
use crate::mqtt::Qos;
use crate::outcomes::answers::LevelChange;

/// How long a new level must hold before it is recorded, milliseconds.
const LEVEL_SETTLED_MS: u64 = 1000;
use crate::outcomes::Pattern;
use crate::packet::{self as pk, Direction};
use crate::synthesis::adapt::{Adaptive, AdaptiveIndex, Offer};
use crate::synthesis::{Rails, Target};

/// Every rule with `adapt` rails on a point with a context.
pub(super) fn adaptive_rules(points: &Points) -> Vec<Adaptive> {
    let mut rules = Vec::new();
    for point in points.iter() {
        for (index, rule) in point.rules.iter().enumerate() {
            let config = rule.config();
            let (Some(adapt), Some(address), Some((level, baseline))) =
                (config.adapt, point.address, config.adaptable_level())
            else {
                continue;
            };
            let direction = match config.kind {
                AlarmKind::High => Direction::High,
                AlarmKind::Low => Direction::Low,
            };
            let pattern = Pattern::Level {
                signal: point.signal,
                direction,
            };
            let target = Target {
                fingerprint: address.full,
                feature: pattern.to_feature(None).0,
                frequency: point.frequency,
                direction,
                unit: pk::fit(&point.view.unit, pk::UNIT_LEN),
            };
            let rails = Rails {
                baseline,
                floor: adapt.floor,
                ceiling: adapt.ceiling,
                direction,
                tighten_only: !adapt.loosen,
                healthy: adapt.healthy,
                relative: adapt.relative,
                accepts: adapt.match_level,
            };
            let id = RuleId {
                point: point.view.id,
                rule: index,
            };
            let name = format!(
                "{}/{}/{}",
                point.view.device,
                point.view.name,
                config.name()
            );
            rules.push(Adaptive::new(
                id,
                name,
                level.into(),
                &target,
                &address,
                rails,
            ));
        }
    }
    rules
}

impl Core {
    /// Every packet from the uplink passes the intake guard. Accepted peer outcomes are shown
    /// to engineers as `peer_outcome` events and offered to the adaptable rules.
    pub(super) fn on_peer_packet(&mut self, topic: &str, bytes: &[u8], retained: bool, now: Now) {
        let verified = self
            .intake
            .accept(topic, bytes, retained, now.unix_ms() / 1000, now.mono);
        if let Some(verified) = verified {
            let b = verified.body();
            let applied_to = match self.adapt.offer(b) {
                Offer::Changed(changed) => {
                    self.apply_levels(&changed, now);
                    changed
                        .iter()
                        .map(|&i| self.adapt.rules()[i].name.clone())
                        .collect()
                }
                Offer::Unmatched => {
                    self.intake.unmatched();
                    Vec::new()
                }
                Offer::Off | Offer::Unchanged => Vec::new(),
            };
            let event = Event::PeerOutcome {
                applied_to,
                site: self.out.site.clone(),
                fingerprint: b.fingerprint.to_string(),
                source: hex::encode(b.source),
                seq: b.seq,
                feature: b.pattern.feature,
                direction: b.pattern.direction,
                threshold: f64::from(b.pattern.threshold),
                unit: b.pattern.unit.to_string(),
                outcome: b.outcome.kind,
                failure_mode: b.outcome.failure_mode,
                confidence: f64::from(b.confidence),
                validations: b.validations,
                refutations: b.refutations,
                lead_time_s: b.lead_time_s,
                ts: timestamp(now.wall),
            };
            self.out.event(&event);
        }
        if self.intake.own_last() {
            self.out.ack_last();
        }
        if self.intake.batch_full() {
            self.commit_intake(now);
        }
    }

    /// Sets the level of each recomputed adaptive rule and publishes its threshold.
    pub(super) fn apply_levels(&mut self, changed: &[AdaptiveIndex], now: Now) {
        for &i in changed {
            let a = &self.adapt.rules()[i];
            self.points[a.rule.point].rules[a.rule.rule].set_level(a.severity, a.effective.value);
        }
        self.publish_thresholds(changed, now);
    }

    /// Records in the history each adaptable level that differs from the last one recorded (the
    /// baseline, before any) once it has held for [`LEVEL_SETTLED_MS`]: a flood of packets
    /// moving a level writes one row when it settles, not a row a packet (on a small state disk
    /// a row per tick filled the write-ahead log). A level restored at start equal to the last
    /// recorded is not a change.
    pub(super) fn record_levels(&mut self, now: Now) {
        let at_ms = now.unix_ms();
        for a in self.adapt.rules() {
            let e = &a.effective;
            // Looked up by reference: most ticks change nothing, and must not allocate.
            let last = self.history.levels.get(&a.name).and_then(|s| s.back());
            if last.map_or(e.baseline, |s| s.value) == e.value {
                self.history.settling.remove(&a.name);
                continue;
            }
            let since = match self.history.settling.get(&a.name) {
                Some(&(value, since)) if value == e.value => since,
                _ => {
                    self.history
                        .settling
                        .insert(a.name.clone(), (e.value, at_ms));
                    continue;
                }
            };
            if at_ms < since.saturating_add(LEVEL_SETTLED_MS) {
                continue;
            }
            self.history.settling.remove(&a.name);
            let at_ms = since;
            let step = view::LevelStep {
                at_ms,
                value: e.value,
                proposals: e.provenance.len(),
            };
            let steps = self.history.levels.entry(a.name.clone()).or_default();
            view::push(steps, step);
            self.answers.level_changed(LevelChange {
                at_ms,
                rule: a.name.clone(),
                value: e.value,
                baseline: e.baseline,
                proposals: step.proposals,
            });
        }
    }

    /// Queues the retained threshold of each adaptive rule in `rules`.
    pub(super) fn publish_thresholds(&mut self, rules: &[AdaptiveIndex], now: Now) {
        for &i in rules {
            let a = &self.adapt.rules()[i];
            let point = &self.points[a.rule.point];
            let rule = point.rules[a.rule.rule].config().name();
            let (summary, proposals) = a.effective.summary(PROVENANCE_SHOWN);
            let payload = Threshold {
                site: self.out.site.clone(),
                device: point.view.device.clone(),
                point: point.view.name.clone(),
                rule: rule.to_string(),
                level: match a.severity {
                    crate::alarms::Severity::Warning => "warning",
                    crate::alarms::Severity::Alarm => "alarm",
                },
                unit: point.view.unit.clone(),
                effective: summary,
                proposals,
                ts: timestamp(now.wall),
            };
            let topic = self
                .out
                .topics
                .threshold(&point.view.device, &point.view.name, rule);
            self.out.json(topic, &payload, Qos::AtLeastOnce, true);
        }
    }

    /// Queues `stats/intake` when the counts changed.
    pub(super) fn publish_intake_stats(&mut self) {
        if let Some(mut counts) = self.intake.take_counts(self.adapt.applied()) {
            counts.ack_failures = crate::mqtt::acks::failed();
            let topic = self.out.topics.intake_stats();
            self.out.json(topic, &counts, Qos::AtMostOnce, false);
        }
    }

    /// Commits trust, proposals and the replay memory in one transaction when they changed,
    /// then releases the acknowledgements of the peer packets they account for. A failed commit
    /// keeps them back (the broker delivers those packets again after a crash) and is retried
    /// after the storage backoff ([`super::storage`]), not sooner.
    pub(super) fn commit_intake(&mut self, now: Now) {
        if self.adapt.dirty() || self.intake.replay_changed() {
            if !self.storage.retry_due(now.mono) {
                return;
            }
            let saved = match &mut self.intake_store {
                Some(store) => store.save(self.adapt.state(), self.intake.guard_mut()),
                None => Ok(()),
            };
            match saved {
                Ok(()) => self.storage_ok(now),
                Err(e) => return self.storage_failed("peers' packets", &e, now),
            }
            self.adapt.saved();
        }
        self.intake.committed();
        self.out.release_acks();
    }
}
