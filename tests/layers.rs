//! The source tree keeps its shape: no module imports one above it in the data flow (the table
//! in `src/lib.rs`), no file in `src/` grows past 600 lines and no function past 80.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module with the modules it may import (besides the leaf modules).
const ALLOWED: &[(&str, &[&str])] = &[
    ("analysis", &[]),
    ("store", &[]),
    ("db", &[]),
    ("backoff", &[]),
    ("watchdog", &[]),
    ("packet", &["store"]),
    ("config", &["analysis", "packet"]),
    ("alarms", &["config"]),
    ("synthesis", &["alarms", "config", "packet"]),
    (
        "outcomes",
        &["alarms", "config", "packet", "analysis", "store"],
    ),
    ("intake", &["synthesis", "packet", "store"]),
    ("sources", &["config", "analysis", "backoff", "store"]),
    (
        "mqtt",
        &[
            "sources",
            "outcomes",
            "synthesis",
            "intake",
            "alarms",
            "config",
            "packet",
            "analysis",
            "backoff",
        ],
    ),
    (
        "core",
        &[
            "mqtt",
            "sources",
            "outcomes",
            "synthesis",
            "intake",
            "alarms",
            "config",
            "packet",
            "analysis",
            "store",
        ],
    ),
    (
        "web",
        &[
            "core",
            "mqtt",
            "outcomes",
            "sources",
            "alarms",
            "config",
            "intake",
            "synthesis",
        ],
    ),
    (
        "sparkplug",
        &[
            "web", "core", "mqtt", "sources", "config", "alarms", "store", "backoff",
        ],
    ),
    (
        "run",
        &[
            "sparkplug",
            "web",
            "core",
            "mqtt",
            "sources",
            "outcomes",
            "synthesis",
            "intake",
            "alarms",
            "config",
            "packet",
            "analysis",
            "store",
            "backoff",
            "watchdog",
        ],
    ),
];
/// Modules that may import anything: the command line, the demo and the fleet simulation sit on top.
const TOP: &[&str] = &["cli", "demo", "sim"];
/// Parts of `mqtt` that own a connection: only `run` (and the top) may use them.
const CONNECTIONS: &[&str] = &["local", "uplink"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            (top, path, text)
        })
        .collect()
}

/// The code of a line, without its comment.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// Every `crate::<module>[::<item>]` a text names, with the items of a `crate::mqtt::{…}` group.
fn imports(text: &str) -> Vec<(String, Option<String>)> {
    let code: String = text.lines().map(code).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let module: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[module.len()..];
        let items: Vec<String> = if let Some(group) = after.strip_prefix("::{") {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                .collect()
        } else if let Some(item) = after.strip_prefix("::") {
            vec![item
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()]
        } else {
            vec![String::new()]
        };
        for item in items {
            out.push((module.clone(), Some(item).filter(|s| !s.is_empty())));
        }
    }
    out
}

#[test]
fn no_module_imports_one_above_it_in_the_data_flow() {
    let leaves = ["store", "db", "backoff", "watchdog"];
    let mut wrong = BTreeSet::new();
    for (top, path, text) in sources() {
        if top == "lib" || top == "main" || TOP.contains(&top.as_str()) {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| *m == top)
            .unwrap_or_else(|| panic!("{top} ({}) is not in the layer table", path.display()))
            .1;
        for (module, item) in imports(&text) {
            if module == top || module.is_empty() {
                continue;
            }
            let leaf_ok = leaves.contains(&module.as_str())
                && top != "analysis"
                && top != "store"
                && top != "db";
            if !(allowed.contains(&module.as_str()) || leaf_ok) {
                wrong.insert(format!("{} → {module}", path.display()));
            }
            let connection =
                module == "mqtt" && item.as_deref().is_some_and(|i| CONNECTIONS.contains(&i));
            if connection && top != "run" {
                wrong.insert(format!("{} → mqtt::{}", path.display(), item.unwrap()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering in src/lib.rs:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_layer_check_sees_an_upward_import() {
    let found = imports(
        "use crate::core::Core;\nuse crate::mqtt::{self, local::Publisher, Qos};\n// crate::run\n",
    );
    assert_eq!(
        found,
        vec![
            ("core".to_string(), Some("Core".to_string())),
            ("mqtt".to_string(), Some("self".to_string())),
            ("mqtt".to_string(), Some("local".to_string())),
            ("mqtt".to_string(), Some("Qos".to_string())),
        ]
    );
}

/// Functions longer than `max` lines: each `fn` to the closing brace at its indentation.
fn long_functions(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub(in crate::config) ")
            .trim_start_matches("async ")
            .trim_start_matches("const ");
        let Some(name) = signature.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let len = end + 2;
            if len > max {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push((i + 1, name, len));
            }
        }
    }
    out
}

#[test]
fn files_and_functions_stay_small() {
    let mut big = Vec::new();
    for (_, path, text) in sources() {
        let lines = text.lines().count();
        if lines > 600 {
            big.push(format!("{}: {lines} lines (at most 600)", path.display()));
        }
        for (line, name, len) in long_functions(&text, 80) {
            big.push(format!(
                "{}:{line}: fn {name} is {len} lines (at most 80)",
                path.display()
            ));
        }
    }
    assert!(
        big.is_empty(),
        "split these where their responsibilities part:\n{}",
        big.join("\n")
    );
}
