//! Join requests (`[outcomes] join_requests`): knowledge on joining for fleet brokers that do
//! not deliver retained messages to wildcard subscriptions (RabbitMQ's MQTT plugin).
//!
//! On every subscription the gateway asks, on `qis/v2/join/<class>` for each equipment class
//! it has adaptable rules in, with its token (the first 16 hex digits of its public key) as the
//! payload. Every gateway hears the requests of its own classes and answers each (at most
//! [`ANSWERS_PER_MINUTE`], its own excepted) by publishing its live packets of that class, QoS
//! 0, to `qis/v2/answer/<token>/ctx/<class>/<process>/<mounting>/<full>/<source>/<pattern>`:
//! only the asker subscribes there. The asker takes an answer as the retained packet it stands
//! for, on its `qis/v2/ctx/...` topic, through the same intake guard; a repeat is `known`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Answers given at most, per minute: a flood of requests cannot make a gateway flood the
/// broker.
pub const ANSWERS_PER_MINUTE: usize = 12;
const REQUEST_PREFIX: &str = "qis/v2/join/";
const ANSWER_PREFIX: &str = "qis/v2/answer/";

/// This gateway's part in join requests.
#[derive(Debug, Clone)]
pub struct Join {
    /// Classes (fingerprints, 32 hex digits) it asks for: those of its adaptable rules.
    pub ask: Vec<String>,
    /// Classes whose requests it hears and answers: those of every context it shares from.
    pub hear: Vec<String>,
    /// Its token: where its answers come.
    pub token: String,
    answered: VecDeque<Instant>,
}

impl Join {
    /// `public_hex` is the gateway's public key (64 hex digits).
    pub fn new(ask: Vec<String>, hear: Vec<String>, public_hex: &str) -> Self {
        Self {
            ask,
            hear,
            token: public_hex.chars().take(16).collect(),
            answered: VecDeque::new(),
        }
    }

    /// The topics to subscribe to: requests of its classes, and its own answers.
    pub fn subscriptions(&self) -> Vec<String> {
        self.hear
            .iter()
            .map(|c| format!("{REQUEST_PREFIX}{c}"))
            .chain(std::iter::once(format!("{ANSWER_PREFIX}{}/#", self.token)))
            .collect()
    }

    /// The requests to publish on subscribing, as (topic, payload).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.ask
            .iter()
            .map(|c| (format!("{REQUEST_PREFIX}{c}"), self.token.clone()))
            .collect()
    }

    /// Whether to answer a request from `token` now: not its own, and within the rate.
    pub fn answer(&mut self, token: &str, now: Instant) -> bool {
        if token == self.token {
            return false;
        }
        while self
            .answered
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.answered.pop_front();
        }
        if self.answered.len() >= ANSWERS_PER_MINUTE {
            return false;
        }
        self.answered.push_back(now);
        true
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A join request: (class, the asker's token), or None for anything else.
pub fn request(topic: &str, payload: &[u8]) -> Option<(String, String)> {
    let class = topic.strip_prefix(REQUEST_PREFIX)?;
    let token = std::str::from_utf8(payload).ok()?;
    (is_hex(class, 32) && is_hex(token, 16)).then(|| (class.to_string(), token.to_string()))
}

/// Where the answer to `token` carrying the packet of `ctx_topic` goes.
pub fn answer_topic(token: &str, ctx_topic: &str) -> Option<String> {
    let rest = ctx_topic.strip_prefix("qis/v2/")?;
    Some(format!("{ANSWER_PREFIX}{token}/{rest}"))
}

/// The context topic an answer stands for, or None if `topic` is not an answer.
pub fn answered(topic: &str) -> Option<String> {
    let rest = topic.strip_prefix(ANSWER_PREFIX)?;
    let (token, ctx) = rest.split_once('/')?;
    (is_hex(token, 16) && ctx.starts_with("ctx/")).then(|| format!("qis/v2/{ctx}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_answer_round_trip() {
        let class = "0123456789abcdef0123456789abcdef";
        let join = Join::new(vec![class.into()], vec![class.into()], &"ab".repeat(32));
        let (topic, token) = &join.requests()[0];
        assert_eq!(
            request(topic, token.as_bytes()),
            Some((class.into(), token.clone()))
        );
        let ctx = format!("qis/v2/ctx/{class}/p/m/f/s/x");
        let answer = answer_topic(token, &ctx).unwrap();
        assert!(join
            .subscriptions()
            .iter()
            .any(|s| answer.starts_with(s.trim_end_matches('#'))));
        assert_eq!(answered(&answer), Some(ctx));
    }

    #[test]
    fn garbage_is_neither_a_request_nor_an_answer() {
        let class = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            request(&format!("qis/v2/join/{class}"), b"not hex at all!!"),
            None
        );
        assert_eq!(request("qis/v2/join/short", b"0123456789abcdef"), None);
        assert_eq!(request(&format!("qis/v2/join/{class}"), &[0xff; 16]), None);
        assert_eq!(answered("qis/v2/answer/zz/ctx/a"), None);
        assert_eq!(answered("qis/v2/answer/0123456789abcdef/other/a"), None);
        assert_eq!(answered("qis/v2/ctx/a/b"), None);
    }

    #[test]
    fn answers_are_limited_per_minute_and_never_to_itself() {
        let mut join = Join::new(vec![], vec![], &"ab".repeat(32));
        let t0 = Instant::now();
        assert!(!join.answer(&join.token.clone(), t0));
        for _ in 0..ANSWERS_PER_MINUTE {
            assert!(join.answer("0123456789abcdef", t0));
        }
        assert!(!join.answer("0123456789abcdef", t0 + Duration::from_secs(59)));
        assert!(join.answer("0123456789abcdef", t0 + Duration::from_secs(60)));
    }
}
