//! Engineers' commands on `qis/<site>/cmd/<name>`: parsed here into typed commands, carried out
//! by the core. A command that cannot be carried out is answered with a `command_rejected`
//! event saying why.

use crate::alarms::AlarmId;
use crate::mqtt::payload::{AckCommand, AnswerCommand, ShelveCommand};
use crate::mqtt::Topics;
use crate::outcomes::Outcome;

/// The largest command payload accepted, bytes: a command is a few fields and a note.
pub const MAX_COMMAND_BYTES: usize = 4096;
/// The longest a rule may be shelved, hours (30 days).
pub const MAX_SHELVE_HOURS: f64 = 720.0;

/// A command.
#[derive(Debug)]
pub enum Command {
    /// `cmd/ack`: acknowledge a point's rules (or one rule).
    Ack(AckTarget),
    /// `cmd/confirm` and `cmd/refute`: say whether an alarm came true.
    Answer(AnswerCommand, Outcome),
    /// `cmd/shelve`: a rule evaluates and records but does not alert, for `hours`.
    Shelve {
        /// Which rules (`occurrence` and `by` as for an acknowledgement).
        target: AckTarget,
        /// For how long.
        hours: f64,
        /// Why.
        note: Option<String>,
    },
    /// `cmd/unshelve`: alert again.
    Unshelve(AckTarget),
}

/// What to acknowledge.
#[derive(Debug, PartialEq)]
pub struct AckTarget {
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Rule name; every rule of the point when absent.
    pub rule: Option<String>,
    /// The alarm's occurrence number when acknowledged by alarm id: it must be the rule's
    /// current alarm (a stale id acknowledges nothing).
    pub occurrence: Option<u64>,
    /// Who acknowledges.
    pub by: Option<String>,
}

impl Command {
    /// The command a message on `topic` carries, or why it is none.
    pub fn parse(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Self, String> {
        if payload.len() > MAX_COMMAND_BYTES {
            return Err(format!(
                "{} bytes is more than a command may have ({MAX_COMMAND_BYTES}); nothing done",
                payload.len()
            ));
        }
        match topics.command_name(topic) {
            Some("ack") => ack(payload).map(Command::Ack),
            Some("confirm") => answer(payload, Outcome::Confirmed),
            Some("refute") => answer(payload, Outcome::Refuted),
            Some("shelve") => shelve(payload, true),
            Some("unshelve") => shelve(payload, false),
            Some(other) => Err(format!(
                "unknown command `{other}`; known: ack, confirm, refute, shelve, unshelve"
            )),
            None => Err("not a command topic".into()),
        }
    }
}

fn ack(payload: &[u8]) -> Result<AckTarget, String> {
    let cmd: AckCommand = serde_json::from_slice(payload)
        .map_err(|e| format!("ack payload is not valid JSON of the documented form: {e}"))?;
    target(cmd)
}

fn shelve(payload: &[u8], on: bool) -> Result<Command, String> {
    let name = if on { "shelve" } else { "unshelve" };
    let cmd: ShelveCommand = serde_json::from_slice(payload)
        .map_err(|e| format!("{name} payload is not valid JSON of the documented form: {e}"))?;
    let (hours, note) = (cmd.hours, cmd.note.clone());
    let target = target(AckCommand {
        alarm_id: cmd.alarm_id,
        device: cmd.device,
        point: cmd.point,
        rule: cmd.rule,
        by: cmd.by,
    })?;
    if !on {
        if hours.is_some() || note.is_some() {
            return Err("unshelve takes no `hours` or `note`".into());
        }
        return Ok(Command::Unshelve(target));
    }
    match hours {
        Some(h) if h > 0.0 && h <= MAX_SHELVE_HOURS => Ok(Command::Shelve {
            target,
            hours: h,
            note,
        }),
        Some(h) => Err(format!(
            "hours = {h} is outside 0–{MAX_SHELVE_HOURS} (more than 0, at most 30 days)"
        )),
        None => Err("a shelve needs `hours` (how long the rule stays quiet)".into()),
    }
}

fn target(cmd: AckCommand) -> Result<AckTarget, String> {
    match (cmd.alarm_id, cmd.device, cmd.point) {
        (Some(id), None, None) => {
            let id: AlarmId = id
                .parse()
                .map_err(|e: crate::alarms::BadAlarmId| e.to_string())?;
            Ok(AckTarget {
                device: id.device,
                point: id.point,
                rule: Some(id.rule),
                occurrence: Some(id.occurrence),
                by: cmd.by,
            })
        }
        (None, Some(device), Some(point)) => Ok(AckTarget {
            device,
            point,
            rule: cmd.rule,
            occurrence: None,
            by: cmd.by,
        }),
        _ => Err("give either `alarm_id`, or `device` and `point` (and optionally `rule`)".into()),
    }
}

fn answer(payload: &[u8], outcome: Outcome) -> Result<Command, String> {
    let cmd: AnswerCommand = serde_json::from_slice(payload)
        .map_err(|e| format!("payload is not valid JSON of the documented form: {e}"))?;
    if outcome == Outcome::Confirmed
        && cmd
            .failure_mode
            .as_deref()
            .is_none_or(|m| m.trim().is_empty())
    {
        return Err("a confirmation needs `failure_mode` (what was found)".into());
    }
    Ok(Command::Answer(cmd, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_into_their_targets_and_bad_ones_say_why() {
        let t = Topics::new("s");
        let Ok(Command::Ack(a)) = Command::parse(
            &t,
            "qis/s/cmd/ack",
            br#"{"alarm_id":"d/p/high/2","by":"me"}"#,
        ) else {
            panic!("an ack by alarm id");
        };
        assert_eq!(
            a,
            AckTarget {
                device: "d".into(),
                point: "p".into(),
                rule: Some("high".into()),
                occurrence: Some(2),
                by: Some("me".into())
            }
        );
        let reason = |topic: &str, payload: &[u8]| Command::parse(&t, topic, payload).unwrap_err();
        assert!(reason("qis/s/cmd/ack", br#"{"alarm_id":"d/p"}"#)
            .contains("device/point/rule/occurrence"));
        assert!(reason("qis/s/cmd/ack", br#"{"device":"d"}"#).contains("give either"));
        assert!(
            reason("qis/s/cmd/confirm", br#"{"alarm_id":"d/p/high/1"}"#).contains("failure_mode")
        );
        assert!(reason("qis/s/cmd/reboot", b"{}").contains("unknown command `reboot`"));
        let Ok(Command::Shelve {
            target,
            hours,
            note,
        }) = Command::parse(
            &t,
            "qis/s/cmd/shelve",
            br#"{"alarm_id":"d/p/high/2","hours":8,"note":"sensor swap","by":"me"}"#,
        )
        else {
            panic!("a shelve");
        };
        assert_eq!(
            (target.occurrence, hours, note.as_deref()),
            (Some(2), 8.0, Some("sensor swap"))
        );
        assert!(
            reason("qis/s/cmd/shelve", br#"{"device":"d","point":"p"}"#).contains("needs `hours`")
        );
        assert!(reason(
            "qis/s/cmd/shelve",
            br#"{"device":"d","point":"p","hours":721}"#
        )
        .contains("outside"));
        assert!(reason(
            "qis/s/cmd/shelve",
            br#"{"device":"d","point":"p","hours":-1}"#
        )
        .contains("outside"));
        assert!(reason(
            "qis/s/cmd/unshelve",
            br#"{"device":"d","point":"p","hours":1}"#
        )
        .contains("no `hours`"));
        assert!(matches!(
            Command::parse(
                &t,
                "qis/s/cmd/unshelve",
                br#"{"device":"d","point":"p","rule":"high"}"#
            ),
            Ok(Command::Unshelve(_))
        ));
        assert!(reason("qis/s/cmd/ack", b"\xff").contains("not valid JSON"));
        let big = format!(
            r#"{{"alarm_id":"d/p/high/1","note":"{}"}}"#,
            "x".repeat(5000)
        );
        assert!(reason("qis/s/cmd/refute", big.as_bytes()).contains("more than a command"));
    }
}
