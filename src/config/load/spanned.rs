//! The generic multi-error engine: each component is deserialised on its own from toml's
//! spanned tree; a rejected key is reported with its position, pruned, and the component tried
//! again, so one file yields every error at once.

use super::{Diagnostic, Loader, MAX_ROUNDS};
use crate::config::validate::Finding;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::de::{DeArray, DeValue};
use toml::Spanned;

/// A byte range in the file.
pub(in crate::config) type Span = Range<usize>;

impl<'t> Loader<'t> {
    pub(in crate::config) fn report(
        &mut self,
        span: Span,
        component: &str,
        message: impl Into<String>,
    ) {
        let (line, column) = line_column(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            line,
            column,
            component: component.to_string(),
            message: message.into(),
        });
    }

    /// Checks that `value` is an array of tables and returns its items.
    pub(in crate::config) fn array_of_tables(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        component: &str,
        what: &str,
    ) -> Option<DeArray<'t>> {
        match value.get_ref() {
            DeValue::Array(items) => {
                let mut ok = true;
                for item in items.iter() {
                    if !item.get_ref().is_table() {
                        self.report(
                            item.span(),
                            component,
                            format!("each entry of {what} must be a table"),
                        );
                        ok = false;
                    }
                }
                ok.then(|| items.clone())
            }
            other => {
                self.report(
                    value.span(),
                    component,
                    format!(
                        "expected an array of tables {what}, found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// Deserializes one component, reporting every serde error (pruning the offending key and
    /// retrying), then runs `validate` on it if it deserialized cleanly.
    pub(in crate::config) fn component<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        component: &str,
        validate: impl Fn(&T) -> Vec<Finding>,
    ) -> Option<T> {
        let mut value = value.clone();
        if !value.get_ref().is_table() {
            self.report(
                value.span(),
                component,
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return None;
        }
        let mut removed: Vec<(Span, String)> = Vec::new();
        let mut clean = true;
        for _ in 0..MAX_ROUNDS {
            let span = value.span();
            let DeValue::Table(table) = value.get_ref() else {
                return None;
            };
            let de = toml::de::Deserializer::from(Spanned::new(span.clone(), table.clone()));
            match T::deserialize(de) {
                Ok(parsed) => {
                    // Checks on a pruned component still find real problems, except on the
                    // keys that were pruned: those now hold defaults the user never wrote.
                    let pruned_here: Vec<&str> = removed
                        .iter()
                        .filter(|(s, _)| *s == span)
                        .map(|(_, k)| k.as_str())
                        .collect();
                    let findings: Vec<Finding> = validate(&parsed)
                        .into_iter()
                        .filter(|(path, _)| !path.first().is_some_and(|k| pruned_here.contains(k)))
                        .collect();
                    if clean && findings.is_empty() {
                        return Some(parsed);
                    }
                    for (path, message) in findings {
                        let at = key_span(&value, &path);
                        self.report(at, component, message);
                    }
                    return None;
                }
                Err(e) => {
                    clean = false;
                    let at = e.span().unwrap_or(span);
                    let message = e.message().trim().to_string();
                    let already = missing_field(&message)
                        .is_some_and(|field| removed.iter().any(|(s, k)| *s == at && k == field));
                    if !already {
                        self.report(at.clone(), component, message);
                    }
                    match prune(&mut value, &at) {
                        Pruned::Key(table_span, key) => removed.push((table_span, key)),
                        Pruned::Element => {}
                        Pruned::Nothing => return None,
                    }
                }
            }
        }
        self.report(
            value.span(),
            component,
            format!(
                "more problems here were not checked (stopped after {MAX_ROUNDS}); fix these first"
            ),
        );
        None
    }
}

/// What `prune` removed.
pub(in crate::config) enum Pruned {
    /// A key from the table with this span.
    Key(Span, String),
    /// An element of an array.
    Element,
    /// Nothing contained the span.
    Nothing,
}

pub(in crate::config) fn contains(outer: &Span, inner: &Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Removes the innermost key or array element whose position contains `at`.
pub(in crate::config) fn prune(value: &mut Spanned<DeValue<'_>>, at: &Span) -> Pruned {
    let span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => {
            let hit = table
                .iter()
                .find(|(k, v)| contains(&k.span(), at) || contains(&v.span(), at))
                .map(|(k, _)| k.get_ref().to_string());
            let Some(key) = hit else {
                return Pruned::Nothing;
            };
            if let Some(child) = table.get_mut(key.as_str()) {
                let nested = matches!(child.get_ref(), DeValue::Table(_) | DeValue::Array(_));
                if nested && contains(&child.span(), at) && child.span() != *at {
                    match prune(child, at) {
                        Pruned::Nothing => {}
                        done => return done,
                    }
                }
            }
            table.remove(key.as_str());
            Pruned::Key(span, key)
        }
        DeValue::Array(items) => {
            let Some(index) = items.iter().position(|v| contains(&v.span(), at)) else {
                return Pruned::Nothing;
            };
            if let Some(child) = items.get_mut(index) {
                if child.span() != *at {
                    match prune(child, at) {
                        Pruned::Nothing => {}
                        done => return done,
                    }
                }
            }
            let mut kept = DeArray::new();
            for (i, item) in items.iter().enumerate() {
                if i != index {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            Pruned::Element
        }
        _ => Pruned::Nothing,
    }
}

/// The field named in serde's "missing field `x`" message.
pub(in crate::config) fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Position of the value at `path` inside `value`, or of the deepest part of it that exists.
pub(in crate::config) fn key_span(value: &Spanned<DeValue<'_>>, path: &[&str]) -> Span {
    let mut current = value;
    for key in path {
        match current.get_ref().as_table().and_then(|t| t.get(*key)) {
            Some(next) => current = next,
            None => break,
        }
    }
    current.span()
}

/// A copy of a table without some keys (those handled as components of their own).
pub(in crate::config) fn without_keys<'t>(
    value: &Spanned<DeValue<'t>>,
    keys: &[&str],
) -> Spanned<DeValue<'t>> {
    let mut copy = value.clone();
    if let DeValue::Table(t) = copy.get_mut() {
        for key in keys {
            t.remove(*key);
        }
    }
    copy
}

/// `device "press1"`, or `device #2` when it has no usable name.
pub(in crate::config) fn component_name(
    kind: &str,
    item: &Spanned<DeValue<'_>>,
    index: usize,
) -> String {
    match item
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|v| v.get_ref().as_str())
    {
        Some(name) => format!("{kind} \"{name}\""),
        None => format!("{kind} #{}", index + 1),
    }
}

pub(in crate::config) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}
