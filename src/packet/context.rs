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
//!
//! A context also has levels, from general to specific ([`MatchLevel`]): the equipment class;
//! the class and process; the four standard keys (class, process, sensor kind and mounting);
//! the whole context. Each level's fingerprint is that of the canonical text of its keys alone
//! (the header, then its pairs in the same order), so the `full` level is the fingerprint
//! above. Packets are published on `qis/v2/ctx/<class>/<process>/<mounting>/<full>`
//! ([`Address::topic`]), and a gateway subscribes at the levels it accepts with wildcards.

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

/// How similar a peer's context must be for its packets to apply here, from general to
/// specific (`match` on a point).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MatchLevel {
    /// The same equipment class.
    Class,
    /// The same class and process.
    Process,
    /// The same class, process, sensor kind and mounting.
    Mounting,
    /// The whole context, attributes included (the default).
    #[default]
    Full,
}

impl MatchLevel {
    /// Every level, from general to specific.
    pub const ALL: [MatchLevel; 4] = [
        MatchLevel::Class,
        MatchLevel::Process,
        MatchLevel::Mounting,
        MatchLevel::Full,
    ];

    /// Its name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchLevel::Class => "class",
            MatchLevel::Process => "process",
            MatchLevel::Mounting => "mounting",
            MatchLevel::Full => "full",
        }
    }

    /// How many standard keys its fingerprint covers; the full level covers every pair.
    fn standard_keys(self) -> usize {
        match self {
            MatchLevel::Class => 1,
            MatchLevel::Process => 2,
            MatchLevel::Mounting | MatchLevel::Full => STANDARD_KEYS.len(),
        }
    }
}

/// A context's fingerprint at every level: where its packets are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// The general levels' fingerprints: class, process, mounting.
    pub general: [Fingerprint; 3],
    /// The whole context's fingerprint.
    pub full: Fingerprint,
}

impl Address {
    /// The fingerprint at `level`.
    pub fn at(&self, level: MatchLevel) -> Fingerprint {
        match level {
            MatchLevel::Class => self.general[0],
            MatchLevel::Process => self.general[1],
            MatchLevel::Mounting => self.general[2],
            MatchLevel::Full => self.full,
        }
    }

    /// The topic packets of this context are published on,
    /// `qis/v2/ctx/<class>/<process>/<mounting>/<full>`.
    pub fn topic(&self) -> String {
        let [c, p, m] = self.general;
        format!("qis/v2/ctx/{c}/{p}/{m}/{}", self.full)
    }

    /// The topic filter that receives packets of contexts sharing this one's `level`: its
    /// fingerprints down to that level, `+` below it, then `#` (each packet's source and
    /// pattern, see [`crate::packet::PacketBody::topic`]).
    pub fn filter(&self, level: MatchLevel) -> String {
        let mut t = String::from("qis/v2/ctx");
        for l in MatchLevel::ALL {
            t.push('/');
            if l <= level {
                t.push_str(&self.at(l).to_string());
            } else {
                t.push('+');
            }
        }
        t.push_str("/#");
        t
    }

    /// The most specific level at which a peer's address equals this one, if any.
    pub fn deepest_match(&self, peer: &Address) -> Option<MatchLevel> {
        MatchLevel::ALL
            .iter()
            .rev()
            .copied()
            .find(|&l| self.at(l) == peer.at(l))
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
        self.canonical_at(MatchLevel::Full)
    }

    /// The canonical text of `level`'s keys alone.
    pub fn canonical_at(&self, level: MatchLevel) -> Result<String, ContextError> {
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
        // Every pair is checked at every level, so a context is valid at all levels or none.
        if level != MatchLevel::Full {
            let kept = &STANDARD_KEYS[..level.standard_keys()];
            pairs.retain(|k, _| kept.contains(&k.as_str()));
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
        self.fingerprint_at(MatchLevel::Full)
    }

    /// The fingerprint of `level`'s keys.
    pub fn fingerprint_at(&self, level: MatchLevel) -> Result<Fingerprint, ContextError> {
        let digest = Sha256::digest(self.canonical_at(level)?.as_bytes());
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        Ok(Fingerprint(fp))
    }

    /// The fingerprints of every level.
    pub fn address(&self) -> Result<Address, ContextError> {
        Ok(Address {
            general: [
                self.fingerprint_at(MatchLevel::Class)?,
                self.fingerprint_at(MatchLevel::Process)?,
                self.fingerprint_at(MatchLevel::Mounting)?,
            ],
            full: self.fingerprint()?,
        })
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

    /// The levels' fingerprints, computed independently with Python's hashlib over the
    /// canonical text of each level's keys (README).
    #[test]
    fn golden_level_fingerprints_match_an_independent_implementation() {
        let c = ctx(
            "CNC Spindle",
            "milling",
            "accelerometer",
            "spindle nose, axial",
            &[("Speed Range", "6000-18000 RPM"), ("bearing", "SKF  7014")],
        );
        let a = c.address().unwrap();
        assert_eq!(a.general[0].to_string(), "dde2a178f9d58d05b0fce48bb2a063f6");
        assert_eq!(a.general[1].to_string(), "7ad4229147c33d1d0a748f9b95d35260");
        assert_eq!(a.general[2].to_string(), "52ebdd987c42d31146f79491f2f66b12");
        assert_eq!(a.full.to_string(), "eb9348e58db4207e1cc95c3b2a6fe74b");
        assert_eq!(
            a.topic(),
            "qis/v2/ctx/dde2a178f9d58d05b0fce48bb2a063f6/7ad4229147c33d1d0a748f9b95d35260/\
             52ebdd987c42d31146f79491f2f66b12/eb9348e58db4207e1cc95c3b2a6fe74b"
        );
        assert_eq!(
            a.filter(MatchLevel::Process),
            "qis/v2/ctx/dde2a178f9d58d05b0fce48bb2a063f6/7ad4229147c33d1d0a748f9b95d35260/+/+/#"
        );
        assert_eq!(a.filter(MatchLevel::Full), format!("{}/#", a.topic()));
    }

    #[test]
    fn the_deepest_shared_level_is_the_match() {
        let base = ctx("pump", "cooling", "acc", "radial", &[("bearing", "6205")]);
        let same_mounting = ctx("pump", "cooling", "acc", "radial", &[("bearing", "6206")]);
        let same_process = ctx("pump", "cooling", "acc", "axial", &[]);
        let same_class = ctx(
            "pump",
            "boiler feed",
            "acc",
            "radial",
            &[("bearing", "6205")],
        );
        let other = ctx("fan", "cooling", "acc", "radial", &[("bearing", "6205")]);
        let a = base.address().unwrap();
        let level = |c: &Context| a.deepest_match(&c.address().unwrap());
        assert_eq!(level(&base), Some(MatchLevel::Full));
        assert_eq!(level(&same_mounting), Some(MatchLevel::Mounting));
        assert_eq!(level(&same_process), Some(MatchLevel::Process));
        assert_eq!(level(&same_class), Some(MatchLevel::Class));
        assert_eq!(level(&other), None);
        // A bad attribute makes every level invalid, not only the full one.
        let bad = ctx("pump", "x", "y", "z", &[("a=b", "1")]);
        assert!(bad.fingerprint_at(MatchLevel::Class).is_err());
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
