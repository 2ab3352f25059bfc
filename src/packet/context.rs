//! Equipment context and its fingerprint, the routing address of outcome packets.
//!
//! A context is what a domain expert declares "similar": equipment class, process, sensor kind,
//! mounting, and any extra attributes. Two gateways whose contexts are equal after
//! canonicalisation share a fingerprint and so an uplink topic. The canonical form (specified
//! in the README so other implementations can reproduce it):
//!
//! 1. values: trimmed, lower-cased (Unicode), every run of white space replaced by one space;
//! 2. keys: trimmed, lower-cased, every run of white space replaced by `_`; after that a key
//!    consists of `a-z`, `0-9`, `_`, `-`, `.` only;
//! 3. the four standard keys `equipment_class`, `process`, `sensor_kind`, `mounting` and the
//!    extra attributes form one set of `key=value` pairs; no value may be empty, no key may
//!    appear twice (an attribute may not reuse a standard key);
//! 4. canonical text = `"qis-context-v1\n"` followed by `key=value\n` for every pair in
//!    ascending byte order of the keys, encoded as UTF-8;
//! 5. fingerprint = the first 16 bytes of SHA-256 of the canonical text; topic =
//!    `qis/v1/ctx/` + the fingerprint as 32 lower-case hex digits.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The four keys every context has.
pub const STANDARD_KEYS: [&str; 4] = ["equipment_class", "process", "sensor_kind", "mounting"];
/// First line of the canonical text; changes only with a new canonicalisation.
pub const CANONICAL_HEADER: &str = "qis-context-v1\n";

/// What a domain expert declares similar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Equipment class, e.g. `centrifugal pump`, `CNC spindle`.
    pub equipment_class: String,
    /// The process the equipment serves, e.g. `cooling water`, `milling`.
    pub process: String,
    /// Sensor kind, e.g. `accelerometer`, `pressure transducer`.
    pub sensor_kind: String,
    /// Mounting of the sensor, e.g. `bearing housing, radial`.
    pub mounting: String,
    /// Further attributes that must match for two assets to count as similar
    /// (e.g. `bearing = "SKF 6205"`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Why a context has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// A value is empty after trimming.
    #[error("context `{key}` is empty")]
    Empty {
        /// The key.
        key: String,
    },
    /// A key has characters outside `a-z0-9_-.` after normalisation.
    #[error("context key `{key}` may only contain letters, digits, `_`, `-` and `.`")]
    BadKey {
        /// The key as written.
        key: String,
    },
    /// A value contains a control character.
    #[error("context `{key}` contains a control character")]
    ControlCharacter {
        /// The key.
        key: String,
    },
    /// Two keys are equal after normalisation.
    #[error("context key `{key}` appears twice after normalisation")]
    Duplicate {
        /// The normalised key.
        key: String,
    },
}

/// The first 16 bytes of SHA-256 over a canonical context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// The uplink topic, `qis/v1/ctx/<32 hex digits>`.
    pub fn topic(&self) -> String {
        format!("qis/v1/ctx/{self}")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| format!("a fingerprint is 32 hex digits: {e}"))?;
        Ok(Fingerprint(out))
    }
}

fn collapse(text: &str, separator: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(separator)
        .to_lowercase()
}

fn normalise_key(key: &str) -> Result<String, ContextError> {
    let k = collapse(key, "_");
    let ok = !k.is_empty()
        && k.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(k)
    } else {
        Err(ContextError::BadKey {
            key: key.to_string(),
        })
    }
}

fn normalise_value(key: &str, value: &str) -> Result<String, ContextError> {
    if value.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(ContextError::ControlCharacter {
            key: key.to_string(),
        });
    }
    let v = collapse(value, " ");
    if v.is_empty() {
        return Err(ContextError::Empty {
            key: key.to_string(),
        });
    }
    Ok(v)
}

impl Context {
    /// The canonical text (see the module documentation).
    pub fn canonical(&self) -> Result<String, ContextError> {
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        let standard = [
            ("equipment_class", &self.equipment_class),
            ("process", &self.process),
            ("sensor_kind", &self.sensor_kind),
            ("mounting", &self.mounting),
        ];
        for (key, value) in standard {
            pairs.insert(key.to_string(), normalise_value(key, value)?);
        }
        for (key, value) in &self.attributes {
            let k = normalise_key(key)?;
            let v = normalise_value(key, value)?;
            if pairs.insert(k.clone(), v).is_some() {
                return Err(ContextError::Duplicate { key: k });
            }
        }
        let mut text = String::from(CANONICAL_HEADER);
        for (k, v) in &pairs {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        Ok(text)
    }

    /// The context's fingerprint.
    pub fn fingerprint(&self) -> Result<Fingerprint, ContextError> {
        let digest = Sha256::digest(self.canonical()?.as_bytes());
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        Ok(Fingerprint(fp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(e: &str, p: &str, s: &str, m: &str, attrs: &[(&str, &str)]) -> Context {
        Context {
            equipment_class: e.into(),
            process: p.into(),
            sensor_kind: s.into(),
            mounting: m.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Golden vectors: the fingerprints were computed independently with Python's hashlib over
    /// the canonical text of the README (`hashlib.sha256(text.encode()).hexdigest()[:32]`).
    #[test]
    fn golden_fingerprints_match_an_independent_implementation() {
        let cases = [
            (
                ctx(
                    "  Centrifugal   PUMP ",
                    "Cooling\twater",
                    "Accelerometer",
                    "Bearing housing,  radial",
                    &[],
                ),
                "2f548489892b5cc59e206b78afa95a7b",
            ),
            (
                ctx(
                    "CNC Spindle",
                    "milling",
                    "accelerometer",
                    "spindle nose, axial",
                    &[("Speed Range", "6000-18000 RPM"), ("bearing", "SKF  7014")],
                ),
                "eb9348e58db4207e1cc95c3b2a6fe74b",
            ),
            (
                ctx(
                    "hydraulic press",
                    "deep drawing",
                    "pressure\ntransducer",
                    "main cylinder",
                    &[],
                ),
                "375aebe69d629aaeae4aea4bc6607642",
            ),
        ];
        for (context, expected) in cases {
            assert_eq!(
                context.fingerprint().unwrap().to_string(),
                expected,
                "{:?}",
                context.canonical()
            );
        }
        assert_eq!(cases_topic(), "qis/v1/ctx/2f548489892b5cc59e206b78afa95a7b");
    }

    fn cases_topic() -> String {
        ctx(
            "centrifugal pump",
            "cooling water",
            "accelerometer",
            "bearing housing, radial",
            &[],
        )
        .fingerprint()
        .unwrap()
        .topic()
    }

    #[test]
    fn attribute_order_case_and_spacing_do_not_matter() {
        let a = ctx("Pump", "x", "y", "z", &[("b", "2"), ("a", "1")]);
        let b = ctx("pump ", " X", "Y", "z", &[("A", "1"), (" b ", "2")]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = ctx("pump", "x", "y", "z", &[("a", "1"), ("b", "3")]);
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn invalid_contexts_are_refused_with_a_reason() {
        assert_eq!(
            ctx(" ", "x", "y", "z", &[]).fingerprint(),
            Err(ContextError::Empty {
                key: "equipment_class".into()
            })
        );
        assert!(matches!(
            ctx("a", "x", "y", "z", &[("a=b", "1")]).fingerprint(),
            Err(ContextError::BadKey { .. })
        ));
        assert!(matches!(
            ctx("a", "x", "y", "z", &[("Process", "1")]).fingerprint(),
            Err(ContextError::Duplicate { .. })
        ));
        assert!(matches!(
            ctx("a\u{0}", "x", "y", "z", &[]).fingerprint(),
            Err(ContextError::ControlCharacter { .. })
        ));
    }

    #[test]
    fn fingerprints_parse_from_hex() {
        let fp: Fingerprint = "2f548489892b5cc59e206b78afa95a7b".parse().unwrap();
        assert_eq!(fp.to_string(), "2f548489892b5cc59e206b78afa95a7b");
        assert!("2f54".parse::<Fingerprint>().is_err());
    }
}
