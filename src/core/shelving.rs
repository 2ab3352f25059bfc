//! Shelving: an engineer quiets a rule for a while (a sensor being replaced, a known fault
//! waiting for parts). A shelved rule still evaluates, changes state and records its transitions
//! in the history; its transitions are not published as `alarm` events, and the retained alert
//! shows until when it is shelved and by whom. It alerts again when unshelved or when its time
//! is up (an `unshelved` event with the rule's state, so an active rule is seen at once).
//! Shelving is kept in memory: a restart ends it, on the side of alerting.

use super::commands::AckTarget;
use super::{alerts, Core, Now};
use crate::alarms::PointId;
use crate::mqtt::payload::{timestamp, Event};
use std::time::{Duration, SystemTime};

/// A rule's shelf.
#[derive(Debug, Clone, PartialEq)]
pub struct Shelf {
    /// Until when the rule is quiet.
    pub until: SystemTime,
    /// Who shelved it.
    pub by: Option<String>,
}

impl Core {
    /// The point and the indexes of its rules that `target` names; `Err` says why none.
    fn targeted(&self, target: &AckTarget) -> Result<(PointId, Vec<usize>), String> {
        let Some(id) = self.points.find(&target.device, &target.point) else {
            return Err(format!(
                "no point `{}` on device `{}`",
                target.point, target.device
            ));
        };
        let mut rules = Vec::new();
        for (i, r) in self.points[id].rules.iter().enumerate() {
            if target
                .rule
                .as_deref()
                .is_some_and(|n| n != r.config().name())
            {
                continue;
            }
            if let Some(n) = target.occurrence.filter(|n| *n != r.occurrence()) {
                return Err(format!(
                    "alarm `{}/{}/{}/{n}` is not the current alarm of that rule (the current one is occurrence {}); nothing done",
                    target.device,
                    target.point,
                    r.config().name(),
                    r.occurrence()
                ));
            }
            rules.push(i);
        }
        if rules.is_empty() {
            return Err(format!(
                "{}/{} has no rule `{}`",
                target.device,
                target.point,
                target.rule.as_deref().unwrap_or_default()
            ));
        }
        Ok((id, rules))
    }

    /// `cmd/shelve`.
    pub(super) fn shelve(
        &mut self,
        target: AckTarget,
        hours: f64,
        note: Option<String>,
        now: Now,
    ) -> Result<(), String> {
        let (id, rules) = self.targeted(&target)?;
        let until = now.wall + Duration::from_secs_f64(hours * 3600.0);
        for i in rules {
            let point = &mut self.points[id];
            point.shelves[i] = Some(Shelf {
                until,
                by: target.by.clone(),
            });
            let event = Event::Shelved {
                site: self.out.site.clone(),
                rule: format!(
                    "{}/{}/{}",
                    target.device,
                    target.point,
                    point.rules[i].config().name()
                ),
                until: timestamp(until),
                by: target.by.clone(),
                note: note.clone(),
                ts: timestamp(now.wall),
            };
            self.out.event(&event);
        }
        alerts::publish_alert(&self.points[id], &mut self.out);
        Ok(())
    }

    /// `cmd/unshelve`.
    pub(super) fn unshelve(&mut self, target: AckTarget, now: Now) -> Result<(), String> {
        let (id, rules) = self.targeted(&target)?;
        let shelved: Vec<usize> = rules
            .into_iter()
            .filter(|&i| self.points[id].shelves[i].is_some())
            .collect();
        if shelved.is_empty() {
            return Err(format!(
                "nothing is shelved on {}/{}",
                target.device, target.point
            ));
        }
        for i in shelved {
            self.end_shelf(id, i, "engineer", target.by.clone(), now);
        }
        alerts::publish_alert(&self.points[id], &mut self.out);
        Ok(())
    }

    /// Ends every shelf whose time is up at `now`.
    pub(super) fn expire_shelves(&mut self, now: Now) {
        for id in self.points.ids() {
            let due: Vec<usize> = self.points[id]
                .shelves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.until <= now.wall))
                .map(|(i, _)| i)
                .collect();
            for &i in &due {
                self.end_shelf(id, i, "expired", None, now);
            }
            if !due.is_empty() {
                alerts::publish_alert(&self.points[id], &mut self.out);
            }
        }
    }

    fn end_shelf(&mut self, id: PointId, rule: usize, reason: &str, by: Option<String>, now: Now) {
        let point = &mut self.points[id];
        point.shelves[rule] = None;
        let r = &point.rules[rule];
        let event = Event::Unshelved {
            site: self.out.site.clone(),
            rule: format!(
                "{}/{}/{}",
                point.view.device,
                point.view.name,
                r.config().name()
            ),
            reason: reason.into(),
            by,
            state: r.state(),
            ts: timestamp(now.wall),
        };
        self.out.event(&event);
    }
}
