//! A bearing's whole life as the simulation replays it: a trend CSV of every snapshot
//! (`snapshot,t_s,rms_g,peak_g,crest,kurtosis,band_2_6k_rms_g`) and a json naming its operating
//! condition, read and checked before anything starts. A problem names the file and the line.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The trend CSV's columns, in this order.
pub const COLUMNS: [&str; 7] = [
    "snapshot",
    "t_s",
    "rms_g",
    "peak_g",
    "crest",
    "kurtosis",
    "band_2_6k_rms_g",
];

/// The features a simulated sensor exposes, in register order.
pub const FEATURES: [&str; 5] = ["rms", "peak", "crest", "kurtosis", "band_2_6k"];

/// One snapshot's features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Seconds since the life's first snapshot.
    pub t_s: f64,
    /// RMS, peak (g), crest factor, kurtosis, 2–6 kHz band RMS (g), in [`FEATURES`] order.
    pub features: [f64; 5],
}

/// The operating condition of a life, a context attribute of its plant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Condition {
    /// The condition's number in its dataset.
    pub id: u32,
    /// Shaft speed, rpm.
    pub rpm: f64,
    /// Radial load, N.
    #[serde(rename = "radial_load_N")]
    pub radial_load_n: f64,
}

/// A bearing's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Life {
    /// The CSV's file name without `.csv`: the plant's name.
    pub name: String,
    /// Its operating condition.
    pub condition: Condition,
    /// Every snapshot, in time order; the last is the end of life.
    pub snapshots: Vec<Snapshot>,
}

impl Life {
    /// Seconds from the first snapshot to the last (the end of life).
    pub fn life_s(&self) -> f64 {
        self.snapshots.last().map_or(0.0, |s| s.t_s)
    }
}

/// Why a life cannot be replayed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LifeError {
    /// The folder cannot be read or holds no life.
    #[error("{dir}: {problem}")]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file is wrong at a line (0: the file as a whole).
    #[error("{}{}: {problem}", file.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    File {
        /// The file.
        file: PathBuf,
        /// 1-based line, or 0.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

fn file_error(file: &Path, line: usize, problem: impl Into<String>) -> LifeError {
    LifeError::File {
        file: file.to_path_buf(),
        line,
        problem: problem.into(),
    }
}

/// Every life in `dir`: each `*.csv` with a `*.json` of the same name beside it, in name order
/// (CSV files without a json, such as a folder's index, are not lives and are skipped).
pub fn load_dir(dir: &Path) -> Result<Vec<Life>, LifeError> {
    let folder = |problem: String| LifeError::Folder {
        dir: dir.to_path_buf(),
        problem,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| folder(format!("cannot read: {e}")))?;
    let mut csvs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv") && p.with_extension("json").is_file())
        .collect();
    csvs.sort();
    if csvs.is_empty() {
        return Err(folder(
            "no life here: a life is a trend CSV with a json of the same name".into(),
        ));
    }
    csvs.iter().map(|p| load(p)).collect()
}

/// The life in the trend CSV `csv` and the json beside it.
pub fn load(csv: &Path) -> Result<Life, LifeError> {
    let json = csv.with_extension("json");
    let condition = condition(&json)?;
    let text = std::fs::read_to_string(csv)
        .map_err(|e| file_error(csv, 0, format!("cannot read: {e}")))?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, h)| h.trim())
        .ok_or_else(|| file_error(csv, 0, "empty file: no header, no snapshot"))?;
    check_header(csv, header)?;
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for (i, line) in lines {
        if !line.trim().is_empty() {
            let s = snapshot(csv, i + 1, line, snapshots.last())?;
            snapshots.push(s);
        }
    }
    if snapshots.len() < 2 {
        return Err(file_error(
            csv,
            0,
            format!(
                "{} snapshot(s): a life needs at least two (a healthy start and an end)",
                snapshots.len()
            ),
        ));
    }
    Ok(Life {
        name: csv
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        condition,
        snapshots,
    })
}

/// The header must name [`COLUMNS`] in order.
fn check_header(csv: &Path, header: &str) -> Result<(), LifeError> {
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    for (i, want) in COLUMNS.iter().enumerate() {
        match names.iter().position(|n| n == want) {
            Some(j) if j == i => {}
            Some(j) => {
                return Err(file_error(
                    csv,
                    1,
                    format!(
                        "column `{want}` is column {} here; it must be column {}",
                        j + 1,
                        i + 1
                    ),
                ))
            }
            None => {
                return Err(file_error(
                    csv,
                    1,
                    format!(
                        "missing column `{want}`; the header must be `{}`",
                        COLUMNS.join(",")
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Line `n` of `csv`, after the snapshot `last`.
fn snapshot(
    csv: &Path,
    n: usize,
    line: &str,
    last: Option<&Snapshot>,
) -> Result<Snapshot, LifeError> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != COLUMNS.len() {
        return Err(file_error(
            csv,
            n,
            format!("{} fields; a snapshot has {}", fields.len(), COLUMNS.len()),
        ));
    }
    let mut values = [0.0; 7];
    for (k, f) in fields.iter().enumerate() {
        values[k] = f
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                file_error(csv, n, format!("`{}` is not a number: `{f}`", COLUMNS[k]))
            })?;
    }
    let t_s = values[1];
    if let Some(last) = last.filter(|l| t_s <= l.t_s) {
        return Err(file_error(
            csv,
            n,
            format!(
                "t_s {t_s} does not follow {} (time must increase)",
                last.t_s
            ),
        ));
    }
    let features = [values[2], values[3], values[4], values[5], values[6]];
    if let Some(k) = features.iter().position(|v| *v < 0.0) {
        return Err(file_error(
            csv,
            n,
            format!("`{}` is negative", COLUMNS[k + 2]),
        ));
    }
    Ok(Snapshot { t_s, features })
}

/// The `operating_condition` of a life's json.
fn condition(json: &Path) -> Result<Condition, LifeError> {
    #[derive(Deserialize)]
    struct Meta {
        operating_condition: Option<Condition>,
    }
    let text = std::fs::read_to_string(json)
        .map_err(|e| file_error(json, 0, format!("cannot read: {e}")))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| file_error(json, e.line(), format!("not the json of a life: {e}")))?;
    let c = meta.operating_condition.ok_or_else(|| {
        file_error(
            json,
            0,
            "no `operating_condition` ({\"id\", \"rpm\", \"radial_load_N\"}): the condition is the plant's context",
        )
    })?;
    let usable =
        c.rpm.is_finite() && c.rpm > 0.0 && c.radial_load_n.is_finite() && c.radial_load_n >= 0.0;
    if !usable {
        return Err(file_error(
            json,
            0,
            "operating_condition needs rpm > 0 and radial_load_N ≥ 0",
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(dir: &Path, csv: &str, json: &str) -> Result<Life, LifeError> {
        std::fs::write(dir.join("b.csv"), csv).unwrap();
        std::fs::write(dir.join("b.json"), json).unwrap();
        load(&dir.join("b.csv"))
    }

    const JSON: &str = r#"{"operating_condition": {"id": 2, "rpm": 1650, "radial_load_N": 4200}}"#;
    const HEADER: &str = "snapshot,t_s,rms_g,peak_g,crest,kurtosis,band_2_6k_rms_g\n";

    #[test]
    fn a_life_is_read_with_its_condition() {
        let dir = tempfile::tempdir().unwrap();
        let l = life(
            dir.path(),
            &format!("{HEADER}1,0,0.5,2,4,3,0.4\n2,10,0.6,2.5,4.1,3.2,0.45\n"),
            JSON,
        )
        .unwrap();
        assert_eq!(l.name, "b");
        assert_eq!(l.condition.id, 2);
        assert_eq!(l.snapshots.len(), 2);
        assert_eq!(l.snapshots[1].features, [0.6, 2.5, 4.1, 3.2, 0.45]);
        assert_eq!(l.life_s(), 10.0);
    }

    #[test]
    fn bad_lives_are_refused_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let says = |csv: &str, json: &str| life(d, csv, json).unwrap_err().to_string();
        let e = says(
            "snapshot,t_s,rms_g,peak_g,crest,kurtosis\n1,0,1,1,1,1\n",
            JSON,
        );
        assert!(e.ends_with("b.csv:1: missing column `band_2_6k_rms_g`; the header must be `snapshot,t_s,rms_g,peak_g,crest,kurtosis,band_2_6k_rms_g`"), "{e}");
        let e = says(
            &format!("{HEADER}1,0,1,1,1,1,1\n2,10,1,1,1,1,1\n3,10,1,1,1,1,1\n"),
            JSON,
        );
        assert!(
            e.ends_with("b.csv:4: t_s 10 does not follow 10 (time must increase)"),
            "{e}"
        );
        let e = says(HEADER, JSON);
        assert!(
            e.ends_with(
                "b.csv: 0 snapshot(s): a life needs at least two (a healthy start and an end)"
            ),
            "{e}"
        );
        let e = says("", JSON);
        assert!(
            e.ends_with("b.csv: empty file: no header, no snapshot"),
            "{e}"
        );
        let e = says(&format!("{HEADER}1,0,1,x,1,1,1\n"), JSON);
        assert!(e.ends_with("b.csv:2: `peak_g` is not a number: `x`"), "{e}");
        let e = says(&format!("{HEADER}1,0,1,1,1,1,1\n"), r#"{"bearing": "B"}"#);
        assert!(e.contains("b.json: no `operating_condition`"), "{e}");
        let e = says(
            &format!("{HEADER}1,0,1,1,1,1,1\n"),
            "{\n\"operating_condition\": [}",
        );
        assert!(e.contains("b.json:2: not the json of a life"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = load_dir(empty.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("no life here: a life is a trend CSV with a json of the same name"),
            "{e}"
        );
    }
}
