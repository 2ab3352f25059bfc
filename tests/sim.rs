//! The fleet simulation's parts against real data and a real gateway: the six shared bearing
//! lives load as their index (`bearings.csv`) describes them, and a simulated sensor replays a
//! life to a real gateway one snapshot per poll, the gateway publishing exactly the CSV's values
//! in order and then the end-of-life fault.

mod common;

use common::*;
use qis_edge::sim::life;
use std::time::Duration;

fn lives() -> std::path::PathBuf {
    repo().join("../shared/data/bearings/run-to-failure")
}

/// The shortest shared life (Bearing3_1, 515 snapshots), its CSV, and a sensor replaying it
/// until the token is cancelled.
async fn shortest_life() -> (
    std::path::PathBuf,
    std::sync::Arc<life::Life>,
    qis_edge::sim::sensor::Sensor,
    tokio_util::sync::CancellationToken,
) {
    let csv = lives().join("femto/femto_Bearing3_1.csv");
    let life = std::sync::Arc::new(life::load(&csv).unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    let sensor = qis_edge::sim::sensor::start(life.clone(), cancel.clone())
        .await
        .unwrap();
    (csv, life, sensor, cancel)
}

/// Waits for site `b31`'s sensor to report the end of life.
async fn end_of_life(observer: &mut Observer) {
    observer
        .wait_for("the end of life", Duration::from_secs(60), |m| {
            m.topic == "qis/b31/metrics/sensor/failed" && m.json["value"] == 1.0
        })
        .await;
}

#[test]
fn the_shared_lives_load_as_their_index_says() {
    let loaded = life::load_dir(&lives().join("femto")).unwrap();
    let index = std::fs::read_to_string(lives().join("bearings.csv")).unwrap();
    let rows: Vec<Vec<&str>> = index
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(loaded.len(), rows.len());
    for row in rows {
        let name = format!("femto_{}", row[1]);
        let l = loaded.iter().find(|l| l.name == name).unwrap();
        assert_eq!(l.condition.id.to_string(), row[3], "{name} condition");
        assert_eq!(l.condition.rpm.to_string(), row[4], "{name} rpm");
        assert_eq!(l.snapshots.len().to_string(), row[9], "{name} snapshots");
        assert_eq!(l.life_s().to_string(), row[10], "{name} life");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_replays_a_life_to_a_real_gateway_one_snapshot_per_poll() {
    let (csv, _life, sensor, cancel) = shortest_life().await;
    let broker = mosquitto();
    let state = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[site]\nid = \"b31\"\nstate_dir = \"{}\"\n[mqtt]\nport = {}\n[metrics]\nmin_interval_ms = 0\nmax_interval_ms = 3600000\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"sensor\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 20\n",
        state.path().display(),
        broker.port,
        sensor.address.port()
    );
    for (i, name) in life::FEATURES.iter().enumerate() {
        text += &format!(
            "[[devices.points]]\nname = \"{name}\"\nregister = \"holding\"\naddress = {}\ndata_type = \"f32\"\n",
            2 * i
        );
    }
    text += "[[devices.points]]\nname = \"failed\"\nregister = \"holding\"\naddress = 10\n";
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    end_of_life(&mut observer).await;
    // The RMS metrics, in order, are the CSV's column (as f32), each change once (unchanged
    // values are not republished within the hour): the CSV read here by hand, not by the
    // loader under test.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut want: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| f64::from(l.split(',').nth(2).unwrap().parse::<f32>().unwrap()))
        .collect();
    want.dedup();
    let got: Vec<f64> = observer
        .seen
        .iter()
        .filter(|m| m.topic == "qis/b31/metrics/sensor/rms")
        .map(|m| m.json["value"].as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "one metric per changed snapshot");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs(),
            "snapshot {}: {g} != {w}",
            i + 1
        );
    }
    stop(gateway).await;
    cancel.cancel();
}

/// A plant as the simulation configures it, run alone: its gateway raises and clears each
/// watched feature's warning exactly at the snapshots the CSV predicts for the engineer's level
/// (the first hour's mean + 3 sigma, computed here from the CSV by hand), and the end-of-life
/// fault confirms the rules' alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plant_alone_warns_where_its_own_levels_say() {
    let (csv, life, sensor, cancel) = shortest_life().await;
    let broker = mosquitto();
    let state = tempfile::tempdir().unwrap();
    let plant = qis_edge::sim::plant::Plant {
        life: &life,
        site: "b31".into(),
        state_dir: state.path().to_path_buf(),
        broker_host: "127.0.0.1".into(),
        broker_port: broker.port,
        sensor_port: sensor.address.port(),
        poll_interval_ms: 20,
        mode: qis_edge::sim::fleet::Mode::Alone,
        baseline_weight: 1.0,
        match_level: qis_edge::packet::MatchLevel::Full,
        k: 3.0,
    };
    let text = plant.toml();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    end_of_life(&mut observer).await;
    // Columns of the CSV, by hand, as the sensor shows them (f32).
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|f| f.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    for (point, column) in [("rms", 2), ("kurtosis", 5), ("band_2_6k", 6)] {
        let healthy: Vec<f64> = rows
            .iter()
            .take_while(|r| r[1] < 3600.0)
            .map(|r| r[column])
            .collect();
        let n = healthy.len() as f64;
        let mean = healthy.iter().sum::<f64>() / n;
        let sd = (healthy.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let level = mean + 3.0 * sd;
        // Raises and clears predicted: at or above the level raises, below clears.
        let mut predicted = Vec::new();
        let mut raised = false;
        for r in &rows {
            let v = f64::from(r[column] as f32);
            if !raised && v >= level {
                predicted.push(("active", v));
                raised = true;
            } else if raised && v < level {
                predicted.push(("cleared", v));
                raised = false;
            }
        }
        let seen: Vec<(&str, f64)> = observer
            .seen
            .iter()
            .filter(|m| {
                m.topic == "qis/b31/events"
                    && m.json["type"] == "alarm"
                    && m.json["point"] == point
                    && (m.json["to"] == "active" || m.json["to"] == "cleared")
            })
            .map(|m| {
                (
                    if m.json["to"] == "active" {
                        "active"
                    } else {
                        "cleared"
                    },
                    m.json["value"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen.len(),
            predicted.len(),
            "{point} at {level}: {seen:?} against {predicted:?}"
        );
        for (s, p) in seen.iter().zip(&predicted) {
            assert_eq!(s.0, p.0, "{point}");
            assert!(
                (s.1 - p.1).abs() <= 1e-6 * p.1.abs(),
                "{point}: {s:?} {p:?}"
            );
        }
        assert!(!predicted.is_empty(), "{point} never warned");
    }
    observer
        .wait_for(
            "a confirmation by the fault",
            Duration::from_secs(10),
            |m| {
                m.topic == "qis/b31/events"
                    && m.json["type"] == "outcome"
                    && m.json["outcome"] == "confirmed"
            },
        )
        .await;
    stop(gateway).await;
    cancel.cancel();
}

/// What a plant's published events say, recomputed here from the broker's messages and the
/// life's CSV read by hand: warnings raised, false alarms (refuted outcomes), peers' packets
/// applied, and the lead time (end of life minus the life time of the first confirmed
/// warning's snapshot, found by its published value in the CSV's column).
#[derive(Debug, PartialEq)]
struct Recomputed {
    warnings: usize,
    false_alarms: usize,
    applied: u64,
    lead_time_s: Option<f64>,
}

fn recompute(seen: &[Message], site: &str, csv: &std::path::Path) -> Recomputed {
    let text = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let column = |point: &str| match point {
        "rms" => 2,
        "kurtosis" => 5,
        "band_2_6k" => 6,
        other => panic!("unwatched point {other}"),
    };
    let events: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|m| m.topic == format!("qis/{site}/events"))
        .map(|m| &m.json)
        .collect();
    let outcome = |e: &&&serde_json::Value, o: &str| e["type"] == "outcome" && e["outcome"] == o;
    let confirmed: Vec<&str> = events
        .iter()
        .filter(|e| outcome(e, "confirmed"))
        .map(|e| e["alarm_id"].as_str().unwrap())
        .collect();
    let mut cursor = std::collections::HashMap::new();
    let mut first_confirmed: Option<f64> = None;
    let mut warnings = 0;
    let transitions = events.iter().filter(|e| {
        e["type"] == "alarm"
            && ["active", "cleared", "normal"].contains(&e["to"].as_str().unwrap_or_default())
    });
    for e in transitions {
        let point = e["point"].as_str().unwrap();
        let value = e["value"].as_f64().unwrap();
        let c = column(point);
        let from: usize = *cursor.get(point).unwrap_or(&0);
        let at = (from..rows.len())
            .find(|&i| (f64::from(rows[i][c] as f32) - value).abs() <= 1e-6 * value.abs())
            .unwrap_or_else(|| panic!("{site} {point} {value} is not in the CSV after row {from}"));
        cursor.insert(point, at);
        if e["to"] == "active" {
            warnings += 1;
            if confirmed.contains(&e["alarm_id"].as_str().unwrap()) {
                first_confirmed.get_or_insert(rows[at][1]);
            }
        }
    }
    let life_s = rows.last().unwrap()[1];
    Recomputed {
        warnings,
        false_alarms: events.iter().filter(|e| outcome(e, "refuted")).count(),
        applied: events
            .iter()
            .filter(|e| {
                e["type"] == "peer_outcome"
                    && e["applied_to"].as_array().is_some_and(|a| !a.is_empty())
            })
            .count() as u64,
        lead_time_s: first_confirmed.map(|t| life_s - t),
    }
}

/// Lives `names` as a fleet, alone and sharing relative levels, plants starting after
/// `stagger` of the one before and hearing peers matching at `match_level`. Checks that every
/// warning of every plant is answered (confirmed by the end of life or refuted by the
/// engineer's rule), that each level starts at the engineer's own, and that the simulation's
/// lead times, false alarms and packets applied equal those recomputed from the published
/// events and the CSV. Returns each run's plants, and the lives.
async fn alone_and_relative(
    names: &[&str],
    stagger: f64,
    match_level: qis_edge::packet::MatchLevel,
) -> (
    Vec<Vec<qis_edge::sim::fleet::PlantResult>>,
    Vec<std::sync::Arc<life::Life>>,
) {
    let lives_dir = lives;
    let lives: Vec<_> = names
        .iter()
        .map(|n| std::sync::Arc::new(life::load(&lives().join(format!("femto/{n}.csv"))).unwrap()))
        .collect();
    let mut results = Vec::new();
    use qis_edge::sim::fleet::Mode;
    for mode in [Mode::Alone, Mode::Relative] {
        let broker = mosquitto();
        let mut observer = Observer::connect(broker.port).await;
        let dir = tempfile::tempdir().unwrap();
        let options = qis_edge::sim::fleet::Options {
            broker_host: "127.0.0.1".into(),
            poll_interval_ms: 15,
            stagger,
            mode,
            baseline_weight: 1.0,
            match_level,
            k: 3.0,
            window_s: 3600.0,
        };
        let r = qis_edge::sim::fleet::run(
            &lives,
            broker.port,
            dir.path(),
            &options,
            Duration::from_secs(120),
        )
        .await
        .unwrap();
        // Every gateway has stopped: a message sent now reaches the observer after all of theirs.
        observer.publish("qis/sim-test/done", "{}").await;
        observer
            .saw_or_wait_for("the end marker", Duration::from_secs(30), |m| {
                m.topic == "qis/sim-test/done"
            })
            .await;
        for (p, name) in r.iter().zip(names.iter()) {
            let csv = lives_dir().join(format!("femto/{name}.csv"));
            let got = Recomputed {
                warnings: p.warnings.len(),
                false_alarms: p.false_alarms(),
                applied: p.applied,
                lead_time_s: p.lead_time_s(),
            };
            assert_eq!(got, recompute(&observer.seen, &p.site, &csv), "{}", p.site);
        }
        for (p, l) in r.iter().zip(&lives) {
            assert!(!p.warnings.is_empty(), "{} never warned", p.name);
            // Each watched level starts at the engineer's own level.
            for (f, point) in [(0, "rms"), (3, "kurtosis"), (4, "band_2_6k")] {
                let first = p.levels.iter().find(|(q, _, _)| q == point);
                let own = qis_edge::sim::engineer::baseline(l, f, 3.0).warning;
                let first = first.map_or(f64::NAN, |(_, _, v)| *v);
                assert!(
                    (first - own).abs() <= 1e-12 * own,
                    "{} {point}: {first} {own}",
                    p.name
                );
            }
            assert!(
                p.warnings.iter().all(|w| w.confirmed.is_some()),
                "{}: unanswered {:?}",
                p.name,
                p.warnings
            );
            println!(
                "{} {}: {} warnings, lead time {:?} s, {} false alarms, {} packets applied",
                mode.as_str(),
                p.name,
                p.warnings.len(),
                p.lead_time_s(),
                p.false_alarms(),
                p.applied
            );
        }
        results.push(r);
    }
    (results, lives)
}

/// Two lives of one operating condition as a fleet, alone and sharing relative levels: with
/// sharing the second plant applies the first plant's packets, warns no later than alone
/// (peers only tighten) and with no more false alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_two_lives_runs_alone_and_sharing() {
    let (results, _) = alone_and_relative(
        &["femto_Bearing3_1", "femto_Bearing3_2"],
        0.5,
        qis_edge::packet::MatchLevel::Full,
    )
    .await;
    assert_eq!(results[0][1].applied, 0, "alone, nothing is applied");
    let (alone, shared) = (&results[0][1], &results[1][1]);
    assert!(
        shared.applied > 0,
        "sharing, the second plant applies the first's packets"
    );
    assert!(
        shared.lead_time_s() >= alone.lead_time_s(),
        "sharing never warns later: {:?} s alone, {:?} s sharing",
        alone.lead_time_s(),
        shared.lead_time_s()
    );
    assert!(
        shared.false_alarms() <= alone.false_alarms(),
        "sharing adds no false alarms: {} alone, {} sharing",
        alone.false_alarms(),
        shared.false_alarms()
    );
}

/// The mission on real lives: Bearing1_2 (condition 1) fails; Bearing3_1 (condition 3, the same
/// rig, sensor and mounting) starts afterwards, receives its live packets on joining and takes
/// them at `mounting` level, relative to its own healthy levels. It warns earlier than alone,
/// by the margin the report prints, and with no more false alarms; the margin is recomputed
/// from the published events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plant_that_fails_second_warns_earlier_with_a_similar_peer() {
    use qis_edge::sim::fleet::Mode;
    let (results, lives) = alone_and_relative(
        &["femto_Bearing1_2", "femto_Bearing3_1"],
        1.0,
        qis_edge::packet::MatchLevel::Mounting,
    )
    .await;
    let (alone, shared) = (&results[0][1], &results[1][1]);
    assert!(shared.applied > 0, "the joiner applies its peer's packets");
    let (before, after) = (alone.lead_time_s().unwrap(), shared.lead_time_s().unwrap());
    assert!(
        after > before,
        "warns earlier with its peer: {before} s alone, {after} s sharing"
    );
    assert!(
        shared.false_alarms() <= alone.false_alarms(),
        "no more false alarms: {} alone, {} sharing",
        alone.false_alarms(),
        shared.false_alarms()
    );
    let options = qis_edge::sim::fleet::Options {
        broker_host: "127.0.0.1".into(),
        poll_interval_ms: 15,
        stagger: 1.0,
        mode: Mode::Alone,
        baseline_weight: 1.0,
        match_level: qis_edge::packet::MatchLevel::Mounting,
        k: 3.0,
        window_s: 3600.0,
    };
    let runs = [
        (Mode::Alone, results[0].clone()),
        (Mode::Relative, results[1].clone()),
    ];
    let report = qis_edge::sim::report::json(&lives, &options, &runs);
    let printed = &report["plants"][1]["relative"]["gain_s"];
    assert_eq!(printed.as_f64(), Some(after - before), "{printed}");
    println!(
        "Bearing3_1 warns {} s earlier with its peer",
        after - before
    );
}
