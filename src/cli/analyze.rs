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
    }
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
    let size = match chart {
        ChartKind::Imr => 1,
        _ => match (args.subgroup_size, &args.subgroup) {
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => {
                return Err("an X-bar chart needs --subgroup COLUMN or --subgroup-size N".into())
            }
        },
    };
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
    if cusum.is_some() {
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
    if ewma.is_some() {
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
    if let Some(spec) = spec {
        out["capability"] = json!(capability(e.location.center, e.sigma, &spec));
    }
    Ok(out)
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
