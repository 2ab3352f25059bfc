//! Loading the configuration and reporting *every* error in it at once.
//!
//! serde stops at the first error, which makes fixing a long file tedious. So the file is parsed
//! into toml's spanned document tree (which keeps byte positions), each component (`[site]`,
//! `[mqtt]`, each device, point and alarm rule) is deserialized on its own, and when serde
//! rejects a key, that key is reported and pruned and the component is tried again. Every
//! message therefore carries the file, line, column and the component it belongs to. Semantic
//! checks (ranges, uniqueness, level ordering) run on each component that deserialized cleanly.

mod devices;
mod points;
mod spanned;
#[cfg(test)]
mod tests;
mod tree;

use super::validate::Finding;
use super::*;
use std::fmt;
use std::path::Path;

/// Upper bound on prune-and-retry rounds per component; each round removes a key, so this is
/// only reached by badly broken files, which are told how far the check went (each round
/// re-reads the component: a file of 400 000 unknown keys would otherwise take half a minute).
pub(in crate::config) const MAX_ROUNDS: usize = 32;

/// One problem in the configuration, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The component the problem belongs to, e.g. `device "press1" / point "oil_temp"`.
    pub component: String,
    /// What is wrong, with the values involved.
    pub message: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        /// The file's path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read; these are all the problems in it.
    #[error("{}", render(file, diagnostics))]
    Invalid {
        /// The file's path as given.
        file: String,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

pub(in crate::config) fn render(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}:{}: {}: {}",
            escape(file),
            d.line,
            d.column,
            escape(&d.component),
            escape(&d.message)
        ));
    }
    out
}

/// Control characters (a newline in a value, say) escaped, so what the file says cannot start
/// a line of its own that reads like another diagnostic.
pub(in crate::config) fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line,
            self.column,
            escape(&self.component),
            escape(&self.message)
        )
    }
}

/// Reads and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(&file, e.as_bytes(), e.utf8_error()))?;
    parse_str(&text, &file)
}

/// A file that is not UTF-8: where the first bad byte is.
fn not_utf8(file: &str, bytes: &[u8], e: std::str::Utf8Error) -> ConfigError {
    let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
    let line = good.matches('\n').count() + 1;
    let column = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
    ConfigError::Invalid {
        file: file.to_string(),
        diagnostics: vec![Diagnostic {
            line,
            column,
            component: "config".into(),
            message: format!("byte 0x{byte:02x} is not UTF-8 text; save the file as UTF-8"),
        }],
    }
}

/// Checks configuration text; `file` names it in messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut loader = Loader {
        text,
        diagnostics: Vec::new(),
    };
    let config = loader.document();
    if loader.diagnostics.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let mut diagnostics = loader.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.dedup();
    Err(ConfigError::Invalid {
        file: file.to_string(),
        diagnostics,
    })
}

pub(in crate::config) struct Loader<'t> {
    pub(in crate::config) text: &'t str,
    pub(in crate::config) diagnostics: Vec<Diagnostic>,
}
