//! `[metrics] layout = "point"` against `"device"`: polls of 100 changing values through
//! `Core::handle` and the drain of its publications (JSON built), side by side in alternating
//! rounds, with the messages each layout hands the broker client per poll. Publishing itself
//! costs per message (a bare serde_json + rumqttc loop is within 1.2× of the gateway's point
//! layout), so the message count is the rest of the saving. `cargo bench --bench layout`.

mod side;

use qis_edge::core::{Core, Input, Now, Parts};
use qis_edge::intake::Intake;
use qis_edge::outcomes::Answers;
use qis_edge::sources::{Sample, SourceEvent};
use side::{compare, Side};
use std::cell::Cell;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

const POINTS: usize = 100;
const POLLS: u64 = 2_000;

fn core(layout: &str) -> (Core, Now) {
    let mut text = format!(
        "[site]\nid = \"b\"\n[metrics]\nmin_interval_ms = 0\nlayout = \"{layout}\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"127.0.0.1\"\n"
    );
    for i in 0..POINTS {
        let _ = write!(
            text,
            "[[devices.points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {i}\nunit = \"bar\"\n"
        );
    }
    let config = qis_edge::config::parse_str(&text, "bench.toml").expect("valid");
    let parts = Parts {
        answers: Answers::memory(),
        sharing: None,
        intake: Intake::new(qis_edge::packet::TrustPolicy::default(), [0; 32]),
        intake_store: None,
        synthesis: Default::default(),
    };
    let t0 = Now::current();
    (Core::new(&config, parts, t0), t0)
}

fn samples(round: u64, at: SystemTime) -> Vec<Sample> {
    (0..POINTS)
        .map(|p| Sample::number(0, p, (round * 7 + p as u64) as f64 * 0.5, at))
        .collect()
}

fn main() {
    // Messages and bytes per round, per layout.
    let counts = [Cell::new((0u64, 0u64)), Cell::new((0u64, 0u64))];
    let mut sides: Vec<Side> = Vec::new();
    for (i, layout) in ["point", "device"].into_iter().enumerate() {
        let (mut core, t0) = core(layout);
        let mut round = 0u64;
        let count = &counts[i];
        sides.push(Side::new(format!("layout = \"{layout}\""), move || {
            let (mut n, mut b) = (0u64, 0u64);
            for _ in 0..POLLS {
                round += 1;
                let now = t0.after(Duration::from_millis(round));
                let batch = samples(round, now.wall);
                core.handle(Input::Source(SourceEvent::Samples(batch)), now);
                for p in core.drain().publications {
                    n += 1;
                    b += (p.topic.len() + p.payload.len()) as u64;
                }
            }
            count.set((n, b));
            POLLS * POINTS as u64
        }));
    }
    let ratios = compare("a poll of 100 changed values, per value", 7, &mut sides);
    drop(sides);
    for (count, layout) in counts.iter().zip(["point", "device"]) {
        let (n, b) = count.get();
        println!(
            "  {layout:>6}: {:.1} messages and {:.0} bytes (topic + payload) per poll",
            n as f64 / POLLS as f64,
            b as f64 / POLLS as f64
        );
    }
    println!(
        "  device layout CPU in the core: {:.2}× the point layout's",
        ratios[1]
    );
}
