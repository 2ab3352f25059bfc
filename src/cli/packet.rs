//! `qis-edge keygen` and `qis-edge packet make|inspect`: tooling around outcome packets.

use crate::packet::guard::{self, ReplayGuard, TrustPolicy};
use crate::packet::{
    keys, label, BearingDefect, Context, Direction, FailureMode, Feature, Frequency, Levels,
    Outcome, OutcomeKind, OutcomePacket, PacketBody, Relative, SignalPattern, SpcChart, SpcRuleSet,
    VERSION,
};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `EX_DATAERR` from sysexits.h: the packet is invalid.
pub const EXIT_INVALID_PACKET: u8 = 65;

/// `qis-edge keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory for `outcome-key.pem` (private, mode 0600) and `outcome-key.pub`.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing key (peers will see a new, untrusted source).
    #[arg(long)]
    force: bool,
}

/// `qis-edge packet ...`
#[derive(Debug, Subcommand)]
pub enum PacketCommand {
    /// Build and sign an outcome packet.
    Make(Box<MakeArgs>),
    /// Verify a packet and print it as JSON; exit 0 when valid, 65 with the reason when not.
    Inspect(InspectArgs),
}

/// `qis-edge packet make`
#[derive(Debug, Args)]
pub struct MakeArgs {
    /// Directory holding the signing key (see `keygen`).
    #[arg(long)]
    key: PathBuf,
    /// TOML file with the context: equipment_class, process, sensor_kind, mounting, [attributes].
    #[arg(long)]
    context_file: PathBuf,
    /// The feature: band, harmonic:N, bpfo, bpfi, bsf, ftf, velocity-rms, acceleration-rms,
    /// kurtosis, crest-factor, process-value, or spc:CHART:RULES:N (CHART xbar-r|xbar-s|imr|
    /// cusum|ewma, RULES western-electric|nelson).
    #[arg(long)]
    pattern: String,
    /// Frequency of the feature, Hz.
    #[arg(long, conflicts_with = "band")]
    frequency: Option<f32>,
    /// Band of the feature, Hz, as LO-HI.
    #[arg(long)]
    band: Option<String>,
    /// The alarm threshold that caught it.
    #[arg(long, allow_negative_numbers = true)]
    threshold: f32,
    /// The threshold over the point's healthy level (e.g. 1.5), for peers whose rules take
    /// relative proposals (`adapt.relative`).
    #[arg(long)]
    ratio: Option<f32>,
    /// Unit of the threshold.
    #[arg(long, default_value = "")]
    unit: String,
    /// high or low.
    #[arg(long, default_value = "high")]
    direction: String,
    /// failure-confirmed, defect-confirmed or false-alarm.
    #[arg(long)]
    outcome: String,
    /// none, bearing-outer-race, bearing-inner-race, bearing-ball, bearing-cage, imbalance,
    /// misalignment, looseness, lubrication, cavitation, electrical, tool-wear,
    /// process-shift, other.
    #[arg(long, default_value = "none")]
    failure_mode: String,
    /// Human-readable label of the failure mode (default: the failure mode).
    #[arg(long)]
    failure_label: Option<String>,
    /// Human-readable equipment label (default: the context's equipment class).
    #[arg(long)]
    equipment_label: Option<String>,
    /// Confidence, 0..1.
    #[arg(long, default_value_t = 0.5)]
    confidence: f32,
    /// Validation count (default 1 for confirmations, 0 for false alarms).
    #[arg(long)]
    validations: Option<u32>,
    /// Refutation count (default 1 for false alarms, 0 for confirmations).
    #[arg(long)]
    refutations: Option<u32>,
    /// Seconds from alarm to confirmed outcome.
    #[arg(long, default_value_t = 0)]
    lead_time_s: u32,
    /// Issue time, Unix seconds (default: now).
    #[arg(long)]
    issued_at: Option<u64>,
    /// Time to live, seconds (default 30 days).
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    ttl_s: u32,
    /// Sequence number (default: the current Unix time in milliseconds, which increases).
    #[arg(long)]
    seq: Option<u64>,
    /// Output file, or - for standard output.
    #[arg(long)]
    out: PathBuf,
}

/// `qis-edge packet inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Packet file, or - for standard input.
    file: PathBuf,
    /// Verify as of this Unix time (seconds) instead of now.
    #[arg(long)]
    at: Option<u64>,
    /// Clock-skew allowance, seconds.
    #[arg(long, default_value_t = 300)]
    clock_skew_s: u64,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `qis-edge keygen`
pub fn keygen(args: KeygenArgs) -> ExitCode {
    let result =
        keys::generate().and_then(|key| keys::write(&args.out, &key, args.force).map(|()| key));
    match result {
        Ok(key) => {
            println!("{}", keys::public_hex(&key));
            eprintln!(
                "Wrote {} (private, mode 0600) and {}.",
                args.out.join(keys::PRIVATE_KEY_FILE).display(),
                args.out.join(keys::PUBLIC_KEY_FILE).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qis-edge keygen: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// `qis-edge packet ...`
pub fn packet(command: PacketCommand) -> ExitCode {
    match command {
        PacketCommand::Make(args) => match make(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("qis-edge packet make: {e}");
                ExitCode::from(super::EXIT_FAILURE)
            }
        },
        PacketCommand::Inspect(args) => inspect(args),
    }
}

/// Parses a kebab-case name into one of the packet's snake_case enums.
fn named<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(text.trim().replace('-', "_")))
        .map_err(|_| format!("unknown {what} `{text}`"))
}

fn parse_feature(text: &str) -> Result<Feature, String> {
    let parts: Vec<&str> = text.split(':').collect();
    Ok(match parts.as_slice() {
        ["band"] => Feature::BandAmplitude,
        ["harmonic", n] => Feature::Harmonic {
            order: n
                .parse()
                .map_err(|_| format!("harmonic order `{n}` is not a number 1..64"))?,
        },
        ["bpfo" | "bpfi" | "bsf" | "ftf"] => {
            Feature::BearingDefect(named::<BearingDefect>("bearing defect", parts[0])?)
        }
        ["velocity-rms"] => Feature::VelocityRms,
        ["acceleration-rms"] => Feature::AccelerationRms,
        ["kurtosis"] => Feature::Kurtosis,
        ["crest-factor"] => Feature::CrestFactor,
        ["process-value"] => Feature::ProcessValue,
        ["spc", chart, rules, n] => Feature::SpcRule {
            chart: named::<SpcChart>(
                "SPC chart",
                &chart
                    .replace("xbar-r", "xbar_r")
                    .replace("xbar-s", "xbar_s"),
            )?,
            rules: named::<SpcRuleSet>("rule set", rules)?,
            rule: n
                .parse()
                .map_err(|_| format!("rule number `{n}` is not a number"))?,
        },
        _ => return Err(format!("unknown pattern `{text}` (see --help)")),
    })
}

fn make(args: MakeArgs) -> Result<(), String> {
    let key = keys::load(&args.key).map_err(|e| e.to_string())?;
    let context_text = std::fs::read_to_string(&args.context_file)
        .map_err(|e| format!("{}: {e}", args.context_file.display()))?;
    let context: Context = toml::from_str(&context_text)
        .map_err(|e| format!("{}: {}", args.context_file.display(), e.message()))?;
    let address = context.address().map_err(|e| e.to_string())?;
    let feature = parse_feature(&args.pattern)?;
    let frequency = frequency(&args)?;
    let kind: OutcomeKind = named("outcome", &args.outcome)?;
    let failure_mode: FailureMode = named("failure mode", &args.failure_mode)?;
    let is_false_alarm = kind == OutcomeKind::FalseAlarm;
    let failure_label = args
        .failure_label
        .unwrap_or_else(|| args.failure_mode.clone());
    let equipment_label = args
        .equipment_label
        .unwrap_or_else(|| context.equipment_class.trim().to_string());
    let body = PacketBody {
        version: VERSION,
        fingerprint: address.full,
        pattern: SignalPattern {
            feature,
            frequency,
            threshold: args.threshold,
            unit: label("--unit", &args.unit).map_err(|e| e.to_string())?,
            direction: named::<Direction>("direction", &args.direction)?,
        },
        outcome: Outcome {
            kind,
            failure_mode,
            label: label("--failure-label", &failure_label).map_err(|e| e.to_string())?,
        },
        confidence: args.confidence,
        validations: args.validations.unwrap_or(u32::from(!is_false_alarm)),
        refutations: args.refutations.unwrap_or(u32::from(is_false_alarm)),
        lead_time_s: args.lead_time_s,
        issued_at: args.issued_at.unwrap_or_else(now_unix),
        ttl_s: args.ttl_s,
        seq: args.seq.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        }),
        source: [0; 32],
        equipment_label: label("--equipment-label", &equipment_label).map_err(|e| e.to_string())?,
        relative: args.ratio.map_or(Relative::None, Relative::Ratio),
        levels: Levels::Known(address.general),
    };
    let packet = body.sign(&key).map_err(|e| e.to_string())?;
    let bytes = packet.to_bytes().map_err(|e| e.to_string())?;
    // Refuse to write a packet that peers would reject (bounds and signature).
    guard::verify(
        &bytes,
        packet.body.issued_at,
        &mut ReplayGuard::new(1),
        &TrustPolicy::default(),
    )
    .map_err(|r| format!("the packet would be rejected by peers: {r}"))?;
    write(&args.out, &bytes, &packet.topic())
}

/// `--frequency` or `--band`.
fn frequency(args: &MakeArgs) -> Result<Frequency, String> {
    Ok(match (&args.frequency, &args.band) {
        (Some(f), _) => Frequency::At(*f),
        (None, Some(band)) => {
            let (lo, hi) = band
                .split_once('-')
                .ok_or("--band is LO-HI, e.g. 500-2000")?;
            let lo = lo
                .trim()
                .parse()
                .map_err(|_| format!("band edge `{lo}` is not a number"))?;
            let hi = hi
                .trim()
                .parse()
                .map_err(|_| format!("band edge `{hi}` is not a number"))?;
            Frequency::Band { lo, hi }
        }
        (None, None) => Frequency::None,
    })
}

/// Writes the packet to `out` (`-`: standard output).
fn write(out: &std::path::Path, bytes: &[u8], topic: &str) -> Result<(), String> {
    if out.as_os_str() == "-" {
        std::io::stdout()
            .write_all(bytes)
            .map_err(|e| e.to_string())?;
    } else {
        std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!(
            "Wrote {} ({} bytes) for topic {}.",
            out.display(),
            bytes.len(),
            topic
        );
    }
    Ok(())
}

fn inspect(args: InspectArgs) -> ExitCode {
    let mut bytes = Vec::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin()
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map(|_| ())
    } else {
        std::fs::File::open(&args.file)
            .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes).map(|_| ()))
    };
    if let Err(e) = read {
        eprintln!("qis-edge packet inspect: {}: {e}", args.file.display());
        return ExitCode::from(super::EXIT_FAILURE);
    }
    let policy = TrustPolicy {
        clock_skew_s: args.clock_skew_s,
        ..TrustPolicy::default()
    };
    let now = args.at.unwrap_or_else(now_unix);
    let verdict = guard::verify(&bytes, now, &mut ReplayGuard::new(1), &policy);
    let decoded = match &verdict {
        Ok(v) => Some(v.packet().clone()),
        Err(_) => guard::decode(&bytes).ok(),
    };
    let mut out = decoded
        .map(|p| to_json(&p, bytes.len()))
        .unwrap_or_else(|| json!({"size": bytes.len()}));
    out["valid"] = json!(verdict.is_ok());
    if let Err(r) = &verdict {
        out["rejection"] = json!(r.kind().name());
        out["reason"] = json!(r.to_string());
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    match verdict {
        Ok(_) => ExitCode::SUCCESS,
        Err(r) => {
            eprintln!("rejected: {r}");
            ExitCode::from(EXIT_INVALID_PACKET)
        }
    }
}

/// An f32 as the decimal it was written as (0.7, not 0.699999988079071); null if non-finite.
fn float(v: f32) -> Value {
    v.to_string()
        .parse::<f64>()
        .ok()
        .map(Value::from)
        .filter(|_| v.is_finite())
        .unwrap_or(Value::Null)
}

/// Every field of a packet as JSON, with keys and fingerprint in hex.
pub fn to_json(packet: &OutcomePacket, size: usize) -> Value {
    let b = &packet.body;
    let frequency = match b.pattern.frequency {
        Frequency::None => Value::Null,
        Frequency::At(f) => json!({"at_hz": float(f)}),
        Frequency::Band { lo, hi } => json!({"band_hz": [float(lo), float(hi)]}),
    };
    let time = |s: u64| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(s))
            .filter(|t| {
                t.duration_since(UNIX_EPOCH)
                    .is_ok_and(|d| d.as_secs() < 253_402_300_800)
            })
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
    };
    json!({
        "size": size,
        "version": b.version,
        "fingerprint": b.fingerprint.to_string(),
        "topic": b.topic(),
        "pattern_id": b.pattern_id(),
        "levels": b.address().map(|a| {
            json!({
                "class": a.general[0].to_string(),
                "process": a.general[1].to_string(),
                "mounting": a.general[2].to_string(),
            })
        }),
        "source": hex::encode(b.source),
        "seq": b.seq,
        "issued_at": b.issued_at,
        "issued_at_utc": time(b.issued_at),
        "ttl_s": b.ttl_s,
        "expires_at_utc": time(b.expires_at()),
        "pattern": {
            "feature": b.pattern.feature,
            "frequency": frequency,
            "threshold": float(b.pattern.threshold),
            "unit": b.pattern.unit.as_str(),
            "direction": b.pattern.direction,
        },
        "outcome": {
            "kind": b.outcome.kind,
            "failure_mode": b.outcome.failure_mode,
            "label": b.outcome.label.as_str(),
        },
        "confidence": float(b.confidence),
        "validations": b.validations,
        "refutations": b.refutations,
        "lead_time_s": b.lead_time_s,
        "equipment_label": b.equipment_label.as_str(),
        "relative": b.relative.ratio().map(|r| json!({"ratio": float(r)})),
        "signature": hex::encode(packet.signature),
    })
}
