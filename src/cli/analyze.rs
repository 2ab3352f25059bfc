//! `qis-edge analyze spc`: the SPC engine over a CSV file, for comparison with other SPC software.

use crate::analysis::spc::{
    capability, Calibration, ChartKind, CusumSettings, EwmaSettings, RuleSet, SpcEngine, SpcPoint,
    SpcSettings, Spec, Violations,
};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// `qis-edge analyze ...`
#[derive(Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Control charts, run rules, CUSUM, EWMA and capability over a CSV column.
    Spc(SpcArgs),
    /// Vibration features, ISO 10816 zone and bearing diagnosis of a waveform file.
    Vibration(VibrationArgs),
}

/// `qis-edge analyze vibration`
#[derive(Debug, Args)]
pub struct VibrationArgs {
    /// Waveform file.
    #[arg(long)]
    input: PathBuf,
    /// f32 (raw little-endian), csv or wav; default from the file name.
    #[arg(long)]
    format: Option<String>,
    /// Samples per second (WAV files carry their own).
    #[arg(long)]
    sample_rate: Option<f64>,
    /// Shaft speed, revolutions per minute.
    #[arg(long)]
    rpm: Option<f64>,
    /// Bearing geometry: ELEMENTS,BALL_DIA,PITCH_DIA,CONTACT_DEG.
    #[arg(long)]
    bearing: Option<String>,
    /// Samples analysed, 1024–262144 (default: the largest power of two the file holds, at most 262144).
    #[arg(long)]
    window: Option<usize>,
    /// Envelope band LO-HI in Hz (default: chosen by spectral kurtosis).
    #[arg(long)]
    band: Option<String>,
    /// Unit of the samples: g or m/s2.
    #[arg(long, default_value = "g")]
    unit: String,
    /// ISO 10816-3 machine group: medium (15–300 kW) or large (300 kW–50 MW).
    #[arg(long, default_value = "medium")]
    machine_group: String,
    /// ISO 10816-3 foundation: rigid or flexible.
    #[arg(long, default_value = "rigid")]
    foundation: String,
    /// Print one JSON object (otherwise a short summary).
    #[arg(long)]
    json: bool,
}

/// `qis-edge analyze spc`
#[derive(Debug, Args)]
pub struct SpcArgs {
    /// CSV file with a header row.
    #[arg(long)]
    input: PathBuf,
    /// Column with the measurements.
    #[arg(long)]
    value: String,
    /// Column whose value identifies the subgroup (consecutive rows with the same value).
    #[arg(long, conflicts_with = "subgroup_size")]
    subgroup: Option<String>,
    /// Consecutive rows per subgroup.
    #[arg(long)]
    subgroup_size: Option<usize>,
    /// xbar-r, xbar-s or imr.
    #[arg(long)]
    chart: String,
    /// Subgroups (points for imr) that estimate the limits (phase I).
    #[arg(long)]
    calibrate: usize,
    /// western-electric (default) or nelson.
    #[arg(long, default_value = "western-electric")]
    rules: String,
    /// Tabular CUSUM as K,H (reference value and decision interval, in sigmas).
    #[arg(long)]
    cusum: Option<String>,
    /// EWMA as LAMBDA,L.
    #[arg(long)]
    ewma: Option<String>,
    /// Capability against specification limits LSL,USL[,TARGET].
    #[arg(long, allow_hyphen_values = true)]
    spec: Option<String>,
    /// Print one JSON object (otherwise a short summary).
    #[arg(long)]
    json: bool,
}

/// `qis-edge analyze ...`
pub fn analyze(command: AnalyzeCommand) -> ExitCode {
    match command {
        AnalyzeCommand::Spc(args) => match spc(&args) {
            Ok(out) => {
                if args.json {
                    println!("{}", serde_json::to_string(&out).unwrap_or_default());
                } else {
                    print_summary(&out);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qis-edge analyze spc: {e}");
                ExitCode::from(super::EXIT_FAILURE)
            }
        },
        AnalyzeCommand::Vibration(args) => match vibration(&args) {
            Ok(out) => {
                if args.json {
                    println!("{}", serde_json::to_string(&out).unwrap_or_default());
                } else {
                    println!(
                        "rms {:.4}, peak {:.4}, crest {:.2}, kurtosis {:.2}, velocity {:.3} mm/s (ISO 10816-3 zone {})",
                        out["rms"].as_f64().unwrap_or(0.0),
                        out["peak"].as_f64().unwrap_or(0.0),
                        out["crest_factor"].as_f64().unwrap_or(0.0),
                        out["kurtosis"].as_f64().unwrap_or(0.0),
                        out["velocity_rms_mm_s"].as_f64().unwrap_or(0.0),
                        out["iso10816_zone"].as_str().unwrap_or("?")
                    );
                    if let Some(b) = out.get("bearing") {
                        println!(
                            "bearing verdict: {} (envelope band {})",
                            b["verdict"], b["envelope_band_hz"]
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qis-edge analyze vibration: {e}");
                ExitCode::from(super::EXIT_FAILURE)
            }
        },
    }
}

fn vibration(args: &VibrationArgs) -> Result<Value, String> {
    use crate::analysis::vibration::{VibrationAnalyzer, VibrationFeatures, VibrationSettings};
    use crate::sources::replay::{read_waveform, WaveformFormat};
    let format = match &args.format {
        Some(f) => serde_json::from_value(json!(f))
            .map_err(|_| format!("--format `{f}`: use f32, csv or wav"))?,
        None => WaveformFormat::from_path(&args.input).ok_or_else(|| {
            format!(
                "{}: cannot tell the format from the name; give --format",
                args.input.display()
            )
        })?,
    };
    let wave = read_waveform(&args.input, format)?;
    let sample_rate = args
        .sample_rate
        .or(wave.sample_rate)
        .ok_or("--sample-rate is needed for raw and CSV files")?;
    let available = wave
        .samples
        .len()
        .min(crate::analysis::vibration::MAX_WINDOW);
    if available < 1024 {
        return Err(format!(
            "{} samples: at least 1024 are needed",
            wave.samples.len()
        ));
    }
    let window = args.window.unwrap_or(1 << available.ilog2());
    if window > wave.samples.len() {
        return Err(format!(
            "--window {window} but the file holds {} samples",
            wave.samples.len()
        ));
    }
    let mut settings = VibrationSettings::new(sample_rate, window);
    settings.unit = match args.unit.as_str() {
        "g" => crate::analysis::vibration::AccelerationUnit::G,
        "m/s2" | "m/s^2" | "m/s²" => {
            crate::analysis::vibration::AccelerationUnit::MetersPerSecondSquared
        }
        other => return Err(format!("--unit `{other}`: use g or m/s2")),
    };
    settings.machine_group = serde_json::from_value(json!(args.machine_group)).map_err(|_| {
        format!(
            "--machine-group `{}`: use medium or large",
            args.machine_group
        )
    })?;
    settings.foundation = serde_json::from_value(json!(args.foundation))
        .map_err(|_| format!("--foundation `{}`: use rigid or flexible", args.foundation))?;
    settings.shaft_hz = args.rpm.map(|r| r / 60.0);
    bearing_and_band(args, &mut settings)?;
    let mut analyzer = VibrationAnalyzer::new(settings).map_err(|e| e.to_string())?;
    let mut features = VibrationFeatures::default();
    analyzer
        .analyze(&wave.samples, &mut features)
        .map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(&features).map_err(|e| e.to_string())?;
    out["sample_rate_hz"] = json!(sample_rate);
    out["window"] = json!(window);
    if out.get("bearing").is_some_and(Value::is_null) {
        if let Some(o) = out.as_object_mut() {
            o.remove("bearing");
        }
    }
    Ok(out)
}

/// `--bearing` and `--band` into the settings.
fn bearing_and_band(
    args: &VibrationArgs,
    settings: &mut crate::analysis::vibration::VibrationSettings,
) -> Result<(), String> {
    use crate::analysis::vibration::bearing::BearingGeometry;
    use crate::analysis::vibration::EnvelopeBand;
    if let Some(b) = &args.bearing {
        match pair("--bearing", b)?.as_slice() {
            [n, d, pd, angle] if *n >= 1.0 && n.fract() == 0.0 => {
                settings.bearing = Some(BearingGeometry {
                    elements: *n as u32,
                    ball_diameter: *d,
                    pitch_diameter: *pd,
                    contact_angle_deg: *angle,
                })
            }
            _ => return Err("--bearing is ELEMENTS,BALL_DIA,PITCH_DIA,CONTACT_DEG".into()),
        }
        if settings.shaft_hz.is_none() {
            return Err("--bearing needs --rpm".into());
        }
    }
    if let Some(band) = &args.band {
        let (lo, hi) = band
            .split_once('-')
            .ok_or("--band is LO-HI, e.g. 2000-5000")?;
        let lo: f64 = lo
            .trim()
            .parse()
            .map_err(|_| format!("--band: `{lo}` is not a number"))?;
        let hi: f64 = hi
            .trim()
            .parse()
            .map_err(|_| format!("--band: `{hi}` is not a number"))?;
        settings.envelope_band = EnvelopeBand::Fixed(lo, hi);
    }
    Ok(())
}

fn pair(what: &str, text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .map_err(|_| format!("{what}: `{p}` is not a number"))
        })
        .collect()
}

/// Reads the value column and the subgroups.
fn read_subgroups(args: &SpcArgs, size: usize) -> Result<Vec<Vec<f64>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&args.input)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", args.input.display()))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{}: no column `{name}` (columns: {})",
                args.input.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let value_col = column(&args.value)?;
    let group_col = args.subgroup.as_deref().map(column).transpose()?;
    let mut groups: Vec<Vec<f64>> = Vec::new();
    let mut current_key: Option<String> = None;
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| format!("{}: line {line}: {e}", args.input.display()))?;
        let text = record.get(value_col).unwrap_or("");
        let value: f64 = text.parse().map_err(|_| {
            format!(
                "{}: line {line}: `{text}` in `{}` is not a number",
                args.input.display(),
                args.value
            )
        })?;
        if !value.is_finite() {
            return Err(format!(
                "{}: line {line}: value is not finite",
                args.input.display()
            ));
        }
        let new_group = match group_col {
            Some(c) => {
                let key = record.get(c).unwrap_or("").to_string();
                let changed = current_key.as_ref() != Some(&key);
                current_key = Some(key);
                changed
            }
            None => groups.last().is_none_or(|g| g.len() >= size),
        };
        if new_group {
            groups.push(Vec::with_capacity(size));
        }
        if let Some(g) = groups.last_mut() {
            g.push(value);
        }
    }
    Ok(groups)
}

fn spc(args: &SpcArgs) -> Result<Value, String> {
    let chart: ChartKind = serde_json::from_value(json!(args.chart))
        .map_err(|_| format!("--chart `{}`: use xbar-r, xbar-s or imr", args.chart))?;
    let rules: RuleSet = serde_json::from_value(json!(args.rules))
        .map_err(|_| format!("--rules `{}`: use western-electric or nelson", args.rules))?;
    let size = subgroup_size(args, chart)?;
    let (cusum, ewma, spec) = spc_extras(args)?;
    let groups = read_subgroups(args, size.max(1))?;
    let size = if size == 0 {
        groups.first().map_or(0, Vec::len)
    } else {
        size
    };
    if groups.len() < args.calibrate {
        return Err(format!(
            "--calibrate {} but the file has only {} subgroups",
            args.calibrate,
            groups.len()
        ));
    }
    let mut engine = SpcEngine::new(SpcSettings {
        chart,
        subgroup_size: size,
        calibration: Calibration::FirstN(args.calibrate),
        rules: Some(rules),
        enabled_rules: None,
        cusum,
        ewma,
    })
    .map_err(|e| e.to_string())?;
    let mut points: Vec<SpcPoint> = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        engine
            .push_subgroup(g, &mut points)
            .map_err(|e| format!("subgroup {}: {e}", i + 1))?;
    }
    let Some(e) = engine.estimate().copied() else {
        return Err("no limits: not enough data to calibrate".into());
    };
    let by_rule = |pick: &dyn Fn(&SpcPoint) -> Violations| {
        let mut map = Map::new();
        for rule in 1..=rules.rules() {
            let idx: Vec<usize> = points
                .iter()
                .filter(|p| pick(p).has(rule))
                .map(|p| p.index)
                .collect();
            map.insert(rule.to_string(), json!(idx));
        }
        Value::Object(map)
    };
    let mut out = json!({
        "chart": args.chart,
        "center": e.location.center,
        "sigma": e.sigma,
        "lcl": e.location.lcl,
        "ucl": e.location.ucl,
        "statistics": points.iter().map(|p| p.statistic).collect::<Vec<_>>(),
        "dispersion": {
            "center": e.dispersion.center,
            "lcl": e.dispersion.lcl,
            "ucl": e.dispersion.ucl,
            "statistics": points.iter().map(|p| p.dispersion).collect::<Vec<_>>(),
            "violations": by_rule(&|p| p.dispersion_violations),
        },
        "violations": by_rule(&|p| p.violations),
    });
    cusum_and_ewma(&mut out, &points, cusum.is_some(), ewma.is_some());
    if let Some(spec) = spec {
        out["capability"] = json!(capability(e.location.center, e.sigma, &spec));
    }
    Ok(out)
}

/// Observations per subgroup: 1 for individuals, `--subgroup-size`, or 0 when `--subgroup`
/// names a column (the size comes from the file).
fn subgroup_size(args: &SpcArgs, chart: ChartKind) -> Result<usize, String> {
    Ok(match chart {
        ChartKind::Imr => 1,
        _ => match (args.subgroup_size, &args.subgroup) {
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => {
                return Err("an X-bar chart needs --subgroup COLUMN or --subgroup-size N".into())
            }
        },
    })
}

/// `--cusum`, `--ewma` and `--spec`.
#[allow(
    clippy::type_complexity,
    reason = "three optional settings, taken apart at once"
)]
fn spc_extras(
    args: &SpcArgs,
) -> Result<(Option<CusumSettings>, Option<EwmaSettings>, Option<Spec>), String> {
    let cusum = match &args.cusum {
        Some(t) => match pair("--cusum", t)?.as_slice() {
            [k, h] => Some(CusumSettings { k: *k, h: *h }),
            _ => return Err("--cusum is K,H".into()),
        },
        None => None,
    };
    let ewma = match &args.ewma {
        Some(t) => match pair("--ewma", t)?.as_slice() {
            [lambda, l] => Some(EwmaSettings {
                lambda: *lambda,
                l: *l,
            }),
            _ => return Err("--ewma is LAMBDA,L".into()),
        },
        None => None,
    };
    let spec = match &args.spec {
        Some(t) => match pair("--spec", t)?.as_slice() {
            [lsl, usl] if lsl < usl => Some(Spec {
                lsl: *lsl,
                usl: *usl,
                target: None,
            }),
            [lsl, usl, target] if lsl < usl => Some(Spec {
                lsl: *lsl,
                usl: *usl,
                target: Some(*target),
            }),
            _ => return Err("--spec is LSL,USL[,TARGET] with LSL < USL".into()),
        },
        None => None,
    };
    Ok((cusum, ewma, spec))
}

/// The CUSUM and EWMA series of the charted points, when configured.
fn cusum_and_ewma(out: &mut Value, points: &[SpcPoint], cusum: bool, ewma: bool) {
    if cusum {
        let c: Vec<_> = points
            .iter()
            .filter_map(|p| p.cusum.map(|c| (p.index, c)))
            .collect();
        out["cusum"] = json!({
            "upper": c.iter().map(|(_, c)| c.upper).collect::<Vec<_>>(),
            "lower": c.iter().map(|(_, c)| c.lower).collect::<Vec<_>>(),
            "violations_upper": c.iter().filter(|(_, c)| c.upper_violation).map(|(i, _)| *i).collect::<Vec<_>>(),
            "violations_lower": c.iter().filter(|(_, c)| c.lower_violation).map(|(i, _)| *i).collect::<Vec<_>>(),
        });
    }
    if ewma {
        let w: Vec<_> = points
            .iter()
            .filter_map(|p| p.ewma.map(|w| (p.index, w)))
            .collect();
        out["ewma"] = json!({
            "z": w.iter().map(|(_, w)| w.z).collect::<Vec<_>>(),
            "lcl": w.iter().map(|(_, w)| w.lcl).collect::<Vec<_>>(),
            "ucl": w.iter().map(|(_, w)| w.ucl).collect::<Vec<_>>(),
            "violations": w.iter().filter(|(_, w)| w.violation).map(|(i, _)| *i).collect::<Vec<_>>(),
        });
    }
}

fn print_summary(out: &Value) {
    println!(
        "{} chart: center {}, sigma {}, limits [{}, {}]",
        out["chart"], out["center"], out["sigma"], out["lcl"], out["ucl"]
    );
    if let Some(v) = out["violations"].as_object() {
        for (rule, points) in v {
            if points.as_array().is_some_and(|a| !a.is_empty()) {
                println!("rule {rule}: points {points}");
            }
        }
    }
    if let Some(c) = out.get("capability") {
        println!("capability: {c}");
    }
}
