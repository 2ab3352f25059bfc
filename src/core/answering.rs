//! The answer path: every raise is recorded so it can be answered; an answer (an engineer's
//! command or a PLC fault) goes into the ledger, becomes a packet for peers when the point has
//! a context, and moves the trust of the peers whose advice had moved the alarm's level.

use super::{alerts, Core, Now};
use crate::alarms::{PointId, RuleId, Transition};
use crate::config::{AlarmKind, SPC_RULE_NAME};
use crate::mqtt::payload::{timestamp, AnswerCommand, Event, SpcDetail};
use crate::outcomes::answers::AnswerFailure;
use crate::outcomes::{AlarmRecord, Answer, Outcome, Pattern, SpcRecord};
use crate::packet::Direction;
use tracing::{info, warn};

impl Core {
    /// Remembers a new raise of rule `rule` of point `id`; `spc` is what the chart found when
    /// it is the `spc` rule.
    pub(super) fn record_raise(
        &mut self,
        id: PointId,
        rule: usize,
        t: &Transition,
        spc: Option<&SpcDetail>,
        now: Now,
    ) {
        if !(t.from_severity.is_none() && t.severity.is_some()) {
            return;
        }
        let point = &self.points[id];
        let r = &point.rules[rule];
        let is_spc = r.config().name() == SPC_RULE_NAME && point.spc.is_some();
        let pattern = if is_spc {
            Pattern::Spc {
                signal: point.signal,
            }
        } else {
            Pattern::Level {
                signal: point.signal,
                direction: match r.config().kind {
                    AlarmKind::High => Direction::High,
                    AlarmKind::Low => Direction::Low,
                },
            }
        };
        let record = AlarmRecord {
            device: point.view.device.clone(),
            point: point.view.name.clone(),
            rule: r.config().name().to_string(),
            raised_at_ms: super::unix_ms(t.at),
            threshold: t.threshold,
            healthy: r.config().adapt.and_then(|a| a.healthy),
            unit: point.view.unit.clone(),
            fingerprint: point.fingerprint.clone(),
            pattern,
            frequency: point.frequency,
            answer: None,
            peers: self.adapt.moved_by(RuleId { point: id, rule }),
            spc: spc.filter(|_| is_spc).map(|detail| SpcRecord {
                chart: detail.chart,
                rule_set: detail.rule_set,
                rule: detail
                    .rules
                    .first()
                    .or(detail.dispersion_rules.first())
                    .copied()
                    .unwrap_or(1),
            }),
        };
        let alarm = alerts::alarm_id(point, r);
        if let Err(e) = self.answers.raised(&alarm, record) {
            self.storage_failed("alarm raise", &e, now);
        }
    }

    /// Records an answer, shares it, moves trust, and publishes the `outcome` event.
    pub(super) fn answer_alarm(
        &mut self,
        cmd: AnswerCommand,
        outcome: Outcome,
        now: Now,
    ) -> Result<(), String> {
        let answer = Answer {
            outcome,
            failure_mode: cmd.failure_mode.clone(),
            note: cmd.note.clone(),
            by: cmd.by.clone(),
            at_ms: now.unix_ms(),
        };
        let sharing = self.sharing.as_ref();
        let answered = self
            .answers
            .answer(&cmd.alarm_id, answer, now.unix_ms(), |planned, seq| {
                sharing.and_then(|s| s.packet(planned, seq, now.unix_ms()))
            });
        let answered = match answered {
            Ok(a) => a,
            Err(AnswerFailure::Storage(e)) => {
                let reason = AnswerFailure::Storage(e.clone()).to_string();
                self.storage_failed("answer", &e, now);
                return Err(reason);
            }
            Err(e) => return Err(e.to_string()),
        };
        self.storage_ok(now);
        let (entry, lead_time_s) = (answered.entry, answered.lead_time_s);
        if let Some(seq) = answered.queued {
            info!(alarm_id = %cmd.alarm_id, seq, "Outcome packet queued for the uplink.");
            self.out.wake_uplink();
        }
        self.adjust_trust(&cmd.alarm_id, outcome, now);
        let record = self.answers.record(&cmd.alarm_id);
        let fingerprint = record.and_then(|r| r.fingerprint.clone());
        let pattern = record.map(|r| r.pattern);
        info!(alarm_id = %cmd.alarm_id, outcome = ?outcome, validations = entry.validations, refutations = entry.refutations, "Alarm answered.");
        let event = Event::Outcome {
            site: self.out.site.clone(),
            alarm_id: cmd.alarm_id,
            outcome,
            failure_mode: cmd.failure_mode,
            note: cmd.note,
            by: cmd.by,
            lead_time_s,
            fingerprint,
            pattern,
            validations: entry.validations,
            refutations: entry.refutations,
            ts: timestamp(now.wall),
        };
        self.out.event(&event);
        Ok(())
    }

    /// Point `id` took a new value: where it is a rule's PLC fault point and the value is the
    /// fault, confirms that rule's unanswered alarms raised within the window before.
    pub(super) fn on_fault_value(&mut self, id: PointId, value: f64, now: Now) {
        let fault = &self.points[id];
        let (fault_point, device) = (fault.view.name.clone(), fault.view.device.clone());
        let mut answers = Vec::new();
        for rule in &fault.confirms {
            let point = &self.points[rule.point];
            let r = &point.rules[rule.rule];
            let Some(c) = &r.config().confirmed_by else {
                continue;
            };
            if value != c.equals {
                continue;
            }
            let since = now
                .unix_ms()
                .saturating_sub(u64::from(c.within_days) * 86_400_000);
            for alarm_id in
                self.answers
                    .unanswered(&device, &point.view.name, r.config().name(), since)
            {
                answers.push(AnswerCommand {
                    alarm_id,
                    failure_mode: Some(c.failure_mode.clone()),
                    note: Some(format!("{fault_point} = {value}")),
                    by: Some(format!("plc:{device}/{fault_point}")),
                });
            }
        }
        for cmd in answers {
            self.confirm_by_plc(cmd, now);
        }
    }

    /// Gives a PLC fault's confirmation; one that cannot be stored (a storage fault) is kept
    /// and given again once storage recovers (see [`super::storage`]).
    pub(super) fn confirm_by_plc(&mut self, cmd: AnswerCommand, now: Now) {
        let alarm_id = cmd.alarm_id.clone();
        match self.answer_alarm(cmd.clone(), Outcome::Confirmed, now) {
            Ok(()) => {
                info!(alarm_id = %alarm_id, by = ?cmd.by, "Alarm confirmed by a PLC fault.")
            }
            Err(e) if self.storage.fault().is_some() => {
                warn!(alarm_id = %alarm_id, error = %e, "PLC fault confirmation kept until storage recovers.");
                self.storage.keep(cmd);
            }
            Err(e) => {
                warn!(alarm_id = %alarm_id, error = %e, "PLC fault confirmation refused.")
            }
        }
    }

    /// Moves the trust of the peers whose proposals had moved an answered alarm's level, and
    /// recomputes every level (weights follow trust).
    fn adjust_trust(&mut self, alarm_id: &str, outcome: Outcome, now: Now) {
        let peers = match self.answers.record(alarm_id) {
            Some(r) if !r.peers.is_empty() => r.peers.clone(),
            _ => return,
        };
        let changes = self.adapt.answered(&peers, outcome == Outcome::Confirmed);
        for (source, from, to) in changes {
            info!(source = %source, from, to, alarm_id, "Peer trust changed.");
            let step = super::view::TrustStep {
                at_ms: now.unix_ms(),
                trust: to,
                outcome,
                alarm_id: alarm_id.into(),
            };
            super::view::push(self.history.trust.entry(source.clone()).or_default(), step);
            self.answers
                .trust_changed(crate::outcomes::answers::TrustChange {
                    at_ms: now.unix_ms(),
                    source: source.clone(),
                    trust: to,
                    alarm_id: alarm_id.to_string(),
                    outcome,
                });
            let event = Event::Trust {
                site: self.out.site.clone(),
                source,
                from,
                to,
                alarm_id: alarm_id.to_string(),
                outcome,
                ts: timestamp(now.wall),
            };
            self.out.event(&event);
        }
        let all = self.adapt.recompute_all();
        self.apply_levels(&all, now);
    }
}
