//! The core driven with no runtime, no broker and no clock: inputs with explicit times in,
//! publications out.

use super::*;
use crate::mqtt::Publication;
use crate::sources::Quality;

const CONFIG: &str = r#"
[site]
id = "t"
[[devices]]
type = "modbus_tcp"
name = "d"
host = "127.0.0.1"
poll_interval_ms = 100
stale_after_ms = 500
[metrics]
min_interval_ms = 100
[[devices.points]]
name = "p"
register = "holding"
address = 0
[[devices.points.alarms]]
kind = "high"
warning = 10.0
alarm = 20.0
"#;

fn core(text: &str, t0: Now) -> Core {
    let config = crate::config::parse_str(text, "t.toml").expect("valid");
    let parts = Parts {
        answers: Answers::memory(),
        sharing: None,
        intake: Intake::new(crate::packet::TrustPolicy::default(), [0; 32]),
        intake_store: None,
        synthesis: SynthesisState::default(),
    };
    Core::new(&config, parts, t0)
}

fn sample(value: Option<f64>, quality: Quality, at: SystemTime) -> Input {
    Input::Source(SourceEvent::Sample(Sample {
        device: 0,
        point: 0,
        value,
        text: None,
        quality,
        error: (quality != Quality::Good).then(|| "timeout".to_string()),
        at,
    }))
}

fn good(value: f64, now: Now) -> Input {
    sample(Some(value), Quality::Good, now.wall)
}

fn on(publications: &[Publication], suffix: &str) -> Vec<serde_json::Value> {
    publications
        .iter()
        .filter(|p| p.topic.ends_with(suffix))
        .map(|p| serde_json::from_slice(&p.payload).expect("JSON"))
        .collect()
}

#[test]
fn a_point_without_good_reads_for_stale_after_turns_stale_and_recovers() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(1.0, t0), t0);
    let t1 = t0.after(Duration::from_millis(400));
    core.handle(Input::Tick, t1);
    assert_eq!(core.view().points[0].quality, Quality::Good);
    core.drain();
    let t2 = t0.after(Duration::from_millis(600));
    core.handle(Input::Tick, t2);
    let view = core.view();
    assert_eq!(view.points[0].quality, Quality::Stale);
    assert_eq!(
        view.points[0].value,
        Some(1.0),
        "a stale point keeps its last value"
    );
    let out = core.drain().publications;
    assert_eq!(on(&out, "metrics/d/p")[0]["quality"], "stale");
    assert_eq!(on(&out, "alerts/d/p")[0]["quality"], "stale");
    core.handle(good(2.0, t2), t2);
    assert_eq!(core.view().points[0].quality, Quality::Good);
}

#[test]
fn a_bad_read_keeps_the_last_good_value() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(5.0, t0), t0);
    core.handle(sample(None, Quality::Bad, t0.wall), t0);
    let view = core.view();
    assert_eq!(view.points[0].quality, Quality::Bad);
    assert_eq!(view.points[0].value, Some(5.0));
}

#[test]
fn metrics_are_rate_limited_and_changes_flushed_on_the_tick() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(1.0, t0), t0);
    let t1 = t0.after(Duration::from_millis(10));
    core.handle(good(2.0, t1), t1);
    let out = core.drain().publications;
    assert_eq!(
        on(&out, "metrics/d/p").len(),
        1,
        "the second value waits for the interval"
    );
    let t2 = t0.after(Duration::from_millis(150));
    core.handle(Input::Tick, t2);
    let metrics = on(&core.drain().publications, "metrics/d/p");
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["value"], 2.0);
    assert!(
        core.view().points[0].trend.buckets().next().is_none(),
        "no trend without the dashboard"
    );
}

#[test]
fn a_raise_is_an_event_and_an_alert_and_an_ack_answers_by_alarm_id() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(25.0, t0), t0);
    let out = core.drain().publications;
    let events = on(&out, "/events");
    assert_eq!(events[0]["type"], "alarm");
    assert_eq!(events[0]["alarm_id"], "d/p/high/1");
    assert_eq!(events[0]["severity"], "alarm");
    assert_eq!(on(&out, "alerts/d/p")[0]["state"], "active");
    assert!(out
        .iter()
        .any(|p| p.topic == "qis/t/alerts/d/p" && p.retain));

    let ack = Input::Command {
        topic: "qis/t/cmd/ack".into(),
        payload: Bytes::from_static(br#"{"alarm_id":"d/p/high/1","by":"me"}"#),
    };
    core.handle(ack, t0);
    let out = core.drain().publications;
    assert_eq!(on(&out, "/events")[0]["by"], "me");
    assert_eq!(on(&out, "alerts/d/p")[0]["state"], "acknowledged");
    assert_eq!(
        core.view().alarms[0].rules[0].alarm_id.as_deref(),
        Some("d/p/high/1")
    );

    let again = Input::Command {
        topic: "qis/t/cmd/ack".into(),
        payload: Bytes::from_static(br#"{"device":"d","point":"p"}"#),
    };
    core.handle(again, t0);
    let rejected = on(&core.drain().publications, "/events");
    assert_eq!(rejected[0]["type"], "command_rejected");
    assert_eq!(rejected[0]["reason"], "nothing to acknowledge on d/p");
}

#[test]
fn shutdown_publishes_offline_retained() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(Input::Shutdown, t0);
    let out = core.drain();
    let status = on(&out.publications, "/status");
    assert_eq!(status[0]["status"], "offline");
    assert_eq!(status[0]["reason"], "shutdown");
    assert!(
        out.release_acks,
        "nothing unsaved holds acknowledgements back"
    );
}

#[test]
fn a_peer_packet_that_fails_the_guard_is_counted_not_applied() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    let garbage = Input::Peer {
        topic: "qis/v1/ctx/00".into(),
        payload: Bytes::from_static(b"not a packet"),
        retained: false,
    };
    core.handle(garbage, t0);
    core.handle(Input::Tick, t0);
    let stats = on(&core.drain().publications, "stats/intake");
    assert_eq!(stats[0]["accepted"], 0);
    let rejected: u64 = stats[0]["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 1);
}

#[test]
fn an_on_delay_is_measured_between_read_times_not_handling_times() {
    let text = CONFIG.replace("alarm = 20.0\n", "alarm = 20.0\non_delay_ms = 1000\n");
    let t0 = Now::current();
    let mut core = core(&text, t0);
    // Read at t0, handled 500 ms late; read again at t0 + 1 s, handled at once.
    core.handle(
        sample(Some(25.0), Quality::Good, t0.wall),
        t0.after(Duration::from_millis(500)),
    );
    let t1 = t0.after(Duration::from_millis(1000));
    core.handle(sample(Some(25.0), Quality::Good, t1.wall), t1);
    let events = on(&core.drain().publications, "/events");
    let raise = events
        .iter()
        .find(|e| e["to"] == "active")
        .expect("the condition held 1 s of read time: raised");
    let since = humantime::parse_rfc3339(raise["condition_since"].as_str().unwrap()).unwrap();
    let at = humantime::parse_rfc3339(raise["ts"].as_str().unwrap()).unwrap();
    assert!(at.duration_since(since).unwrap() >= Duration::from_millis(1000));
}

#[test]
fn its_own_packet_back_from_the_broker_is_acknowledged_at_once_and_a_peers_waits_for_the_save() {
    use crate::packet::*;
    let own = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let config = crate::config::parse_str(CONFIG, "t.toml").expect("valid");
    let t0 = Now::current();
    let parts = Parts {
        answers: Answers::memory(),
        sharing: None,
        intake: Intake::new(TrustPolicy::default(), own.verifying_key().to_bytes()),
        intake_store: None,
        synthesis: SynthesisState::default(),
    };
    let mut core = Core::new(&config, parts, t0);
    core.drain();
    let packet = |key: &ed25519_dalek::SigningKey, seq: u64| {
        let body = PacketBody {
            version: VERSION,
            fingerprint: Fingerprint([2; 16]),
            pattern: SignalPattern {
                feature: Feature::ProcessValue,
                frequency: Frequency::None,
                threshold: 70.0,
                unit: label("unit", "°C").unwrap(),
                direction: Direction::High,
            },
            outcome: crate::packet::Outcome {
                kind: OutcomeKind::FailureConfirmed,
                failure_mode: FailureMode::Lubrication,
                label: label("l", "dry").unwrap(),
            },
            confidence: 0.5,
            validations: 1,
            refutations: 0,
            lead_time_s: 60,
            issued_at: t0.unix_ms() / 1000,
            ttl_s: 3600,
            seq,
            source: [0; 32],
            equipment_label: label("e", "pump").unwrap(),
            relative: crate::packet::Relative::None,
            levels: crate::packet::Levels::None,
        };
        let topic = body.topic();
        let bytes = body.sign(key).unwrap().to_bytes().unwrap();
        Input::Peer {
            topic,
            payload: Bytes::from(bytes),
            retained: false,
        }
    };
    core.handle(packet(&own, 1), t0);
    let out = core.drain();
    assert!(out.ack_last, "nothing of its own packet needs saving first");
    let peer = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    core.handle(packet(&peer, 1), t0);
    let out = core.drain();
    assert!(
        !out.ack_last && !out.release_acks,
        "a peer's packet waits for the save"
    );
    core.handle(Input::Tick, t0);
    assert!(core.drain().release_acks, "the tick saves and releases it");
}

/// A database that takes no writes (as a read-only card): alarms go on, the answer is refused
/// with the reason and nothing changes, the fault is published; the disk is probed after the
/// backoff and not before; once writable the fault clears by itself and the answer is taken.
#[test]
fn a_storage_fault_refuses_answers_retries_with_backoff_and_clears_by_itself() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(25.0, t0), t0);
    let events = on(&core.drain().publications, "/events");
    let id = events[0]["alarm_id"].as_str().unwrap().to_string();
    let read_only = |core: &mut Core, on: bool| {
        core.answers
            .db()
            .conn()
            .pragma_update(None, "query_only", on)
            .unwrap()
    };
    read_only(&mut core, true);
    let confirm = |id: &str| Input::Command {
        topic: "qis/t/cmd/confirm".into(),
        payload: Bytes::from(format!(
            r#"{{"alarm_id": "{id}", "failure_mode": "lubrication"}}"#
        )),
    };
    let t1 = t0.after(Duration::from_millis(10));
    core.handle(confirm(&id), t1);
    let out = core.drain().publications;
    let rejected = on(&out, "/events");
    assert_eq!(rejected[0]["type"], "command_rejected");
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not recorded") && reason.contains("read-only"),
        "{reason}"
    );
    assert_eq!(on(&out, "/stats/storage")[0]["state"], "fault");
    assert_eq!(
        on(&out, "/status")[0]["faults"],
        serde_json::json!(["storage"])
    );
    assert!(
        core.answers.record(&id).unwrap().answer.is_none(),
        "nothing changed"
    );
    let failures = |core: &Core| core.storage.failed_writes();
    assert_eq!(failures(&core), Some(1));

    // Alarms go on during the fault.
    let t2 = t0.after(Duration::from_millis(400));
    core.handle(good(0.0, t2), t2);
    assert!(on(&core.drain().publications, "/events")
        .iter()
        .any(|e| e["to"] == "cleared"));

    // Not probed before the backoff (at most 1 s at first); probed after it.
    core.handle(Input::Tick, t0.after(Duration::from_millis(490)));
    assert_eq!(failures(&core), Some(1), "no retry before the backoff");
    core.handle(Input::Tick, t0.after(Duration::from_millis(1020)));
    assert_eq!(failures(&core), Some(2), "retried after it");
    core.handle(Input::Tick, t0.after(Duration::from_millis(1100)));
    assert_eq!(failures(&core), Some(2), "the next delay is longer");
    core.drain();

    read_only(&mut core, false);
    let t3 = t0.after(Duration::from_secs(120));
    core.handle(Input::Tick, t3);
    let out = core.drain().publications;
    assert_eq!(on(&out, "/stats/storage")[0]["state"], "ok");
    assert!(on(&out, "/status")[0].get("faults").is_none());
    assert!(core.storage_fault().is_none());
    core.handle(confirm(&id), t3);
    let events = on(&core.drain().publications, "/events");
    assert_eq!(events[0]["type"], "outcome", "{events:?}");
}

/// A PLC fault code that arrives during a storage fault confirms its alarm once storage
/// recovers, not never.
#[test]
fn a_plc_fault_confirmation_refused_by_a_storage_fault_is_given_once_it_clears() {
    let text = format!(
        "{CONFIG}[devices.points.alarms.confirmed_by]\npoint = \"fault\"\nequals = 17\n\
         within_days = 14\nfailure_mode = \"lubrication\"\n\n\
         [[devices.points]]\nname = \"fault\"\nregister = \"holding\"\naddress = 1\n"
    );
    let t0 = Now::current();
    let mut core = core(&text, t0);
    core.handle(good(25.0, t0), t0);
    let id = on(&core.drain().publications, "/events")[0]["alarm_id"]
        .as_str()
        .unwrap()
        .to_string();
    core.answers
        .db()
        .conn()
        .pragma_update(None, "query_only", true)
        .unwrap();
    let fault = |value: f64, at: Now| {
        Input::Source(SourceEvent::Sample(Sample {
            device: 0,
            point: 1,
            value: Some(value),
            text: None,
            quality: Quality::Good,
            error: None,
            at: at.wall,
        }))
    };
    core.handle(fault(0.0, t0), t0);
    let t1 = t0.after(Duration::from_millis(100));
    core.handle(fault(17.0, t1), t1);
    assert!(core.storage_fault().is_some());
    assert!(core.answers.record(&id).unwrap().answer.is_none());
    core.answers
        .db()
        .conn()
        .pragma_update(None, "query_only", false)
        .unwrap();
    core.drain();
    let t2 = t0.after(Duration::from_secs(120));
    core.handle(Input::Tick, t2);
    let events = on(&core.drain().publications, "/events");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "outcome" && e["alarm_id"] == id.as_str()),
        "{events:?}"
    );
    let answer = core.answers.record(&id).unwrap().answer.clone().unwrap();
    assert_eq!(answer.failure_mode.as_deref(), Some("lubrication"));
}

/// An acknowledgement by a stale alarm id acknowledges nothing: the occurrence must be the
/// rule's current alarm.
#[test]
fn a_stale_alarm_id_acknowledges_nothing() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(25.0, t0), t0);
    let id = on(&core.drain().publications, "/events")[0]["alarm_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, "d/p/high/1");
    let ack = |id: &str| Input::Command {
        topic: "qis/t/cmd/ack".into(),
        payload: Bytes::from(format!(r#"{{"alarm_id": "{id}"}}"#)),
    };
    core.handle(ack("d/p/high/999"), t0);
    let events = on(&core.drain().publications, "/events");
    assert_eq!(events[0]["type"], "command_rejected");
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not the current alarm"),
        "{events:?}"
    );
    assert!(!core.view().alarms[0].rules[0].acknowledged);
    core.handle(ack("d/p/high/1"), t0);
    let events = on(&core.drain().publications, "/events");
    assert_eq!(events[0]["type"], "alarm", "{events:?}");
    assert!(core.view().alarms[0].rules[0].acknowledged);
}

fn command(topic: &str, payload: &'static [u8]) -> Input {
    Input::Command {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
    }
}

#[test]
fn a_shelved_rule_records_but_does_not_alert_until_its_time_is_up() {
    let t0 = Now::current();
    let mut core = core(CONFIG, t0);
    core.handle(good(1.0, t0), t0);
    core.drain();
    core.handle(
        command(
            "qis/t/cmd/shelve",
            br#"{"device":"d","point":"p","hours":1,"note":"sensor swap","by":"ana"}"#,
        ),
        t0,
    );
    let out = core.drain();
    assert_eq!(out.command, Some(Ok(())));
    let events = on(&out.publications, "/events");
    assert_eq!(events[0]["type"], "shelved");
    assert_eq!(
        (events[0]["rule"].as_str(), events[0]["by"].as_str()),
        (Some("d/p/high"), Some("ana"))
    );
    let alert = &on(&out.publications, "alerts/d/p")[0];
    assert_eq!(alert["rules"][0]["shelved_by"], "ana");
    assert!(alert["rules"][0]["shelved_until"].is_string());

    // Raised while shelved: the state changes and the history records it; no alarm event.
    let t1 = t0.after(Duration::from_secs(60));
    core.handle(good(25.0, t1), t1);
    let out = core.drain().publications;
    assert!(
        on(&out, "/events").is_empty(),
        "a shelved rule does not alert"
    );
    assert_eq!(on(&out, "alerts/d/p")[0]["state"], "active");
    assert!(
        core.answers.flush_due(),
        "the transition waits for the history"
    );

    // An hour after shelving it alerts again, with its state.
    let t2 = t0.after(Duration::from_secs(3600));
    core.handle(Input::Tick, t2);
    let out = core.drain().publications;
    let events = on(&out, "/events");
    assert_eq!(events[0]["type"], "unshelved");
    assert_eq!(
        (events[0]["reason"].as_str(), events[0]["state"].as_str()),
        (Some("expired"), Some("active"))
    );
    let alerts = on(&out, "alerts/d/p");
    assert!(alerts.last().unwrap()["rules"][0]
        .get("shelved_until")
        .is_none());
}

#[test]
fn unshelving_by_hand_and_refusals() {
    let t2 = Now::current();
    let mut core = core(CONFIG, t2);
    core.handle(good(25.0, t2), t2);
    core.drain();
    // Nothing shelved: unshelve says so; shelve, then unshelve by hand.
    core.handle(
        command("qis/t/cmd/unshelve", br#"{"device":"d","point":"p"}"#),
        t2,
    );
    let out = core.drain();
    assert_eq!(out.command, Some(Err("nothing is shelved on d/p".into())));
    core.handle(
        command(
            "qis/t/cmd/shelve",
            br#"{"alarm_id":"d/p/high/1","hours":2}"#,
        ),
        t2,
    );
    core.handle(
        command(
            "qis/t/cmd/unshelve",
            br#"{"alarm_id":"d/p/high/1","by":"ana"}"#,
        ),
        t2,
    );
    let events = on(&core.drain().publications, "/events");
    assert_eq!(events.last().unwrap()["reason"], "engineer");
    core.handle(
        command(
            "qis/t/cmd/shelve",
            br#"{"alarm_id":"d/p/high/9","hours":2}"#,
        ),
        t2,
    );
    let rejected = core.drain().command.unwrap().unwrap_err();
    assert!(rejected.contains("not the current alarm"), "{rejected}");
}
