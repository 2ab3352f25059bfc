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

use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Answers given at most, per second: requests heard beyond that wait their turn (a fleet
/// starting at once asks all together), so a flood of requests cannot make a gateway flood the
/// broker, and none is lost.
pub const ANSWERS_PER_SECOND: u32 = 100;
/// Requests waiting for their answer at most; more are ignored (they ask again on their next
/// subscription).
pub const WAITING_MAX: usize = 4096;
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
    /// Requests heard and not yet answered, as (class, token), oldest first.
    waiting: VecDeque<(String, String)>,
    queued: HashSet<(String, String)>,
    /// When the next answer may go.
    ready_at: Instant,
}

impl Join {
    /// `public_hex` is the gateway's public key (64 hex digits).
    pub fn new(ask: Vec<String>, hear: Vec<String>, public_hex: &str) -> Self {
        Self {
            ask,
            hear,
            token: public_hex.chars().take(16).collect(),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            ready_at: Instant::now(),
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

    /// A request heard: queued for an answer unless it is its own, already waiting, or the
    /// queue is full.
    pub fn heard(&mut self, class: &str, token: &str) -> bool {
        let request = (class.to_string(), token.to_string());
        if token == self.token
            || self.waiting.len() >= WAITING_MAX
            || self.queued.contains(&request)
        {
            return false;
        }
        self.queued.insert(request.clone());
        self.waiting.push_back(request);
        true
    }

    /// When the next waiting request may be answered; None with none waiting.
    pub fn next_at(&self) -> Option<Instant> {
        (!self.waiting.is_empty()).then_some(self.ready_at)
    }

    /// The next request to answer now, as (class, token), if its turn has come.
    pub fn take(&mut self, now: Instant) -> Option<(String, String)> {
        if now < self.ready_at {
            return None;
        }
        let request = self.waiting.pop_front()?;
        self.queued.remove(&request);
        self.ready_at = now + Duration::from_secs(1) / ANSWERS_PER_SECOND;
        Some(request)
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
    fn requests_wait_their_turn_once_each_and_never_its_own() {
        let mut join = Join::new(vec![], vec![], &"ab".repeat(32));
        let own = join.token.clone();
        assert!(!join.heard("c", &own));
        assert!(join.heard("c", "0123456789abcdef"));
        assert!(!join.heard("c", "0123456789abcdef"), "already waiting");
        assert!(join.heard("c", "fedcba9876543210"));
        let t0 = join.next_at().unwrap();
        assert_eq!(join.take(t0).unwrap().1, "0123456789abcdef");
        let next = join.next_at().unwrap();
        assert!(next > t0);
        assert_eq!(join.take(next - Duration::from_millis(1)), None, "not yet");
        assert_eq!(join.take(next).unwrap().1, "fedcba9876543210");
        assert_eq!(join.next_at(), None);
        for i in 0..WAITING_MAX {
            assert!(join.heard("c", &format!("{i:016x}")));
        }
        assert!(!join.heard("c", "ffffffffffffffff"), "the queue is bounded");
    }
}
