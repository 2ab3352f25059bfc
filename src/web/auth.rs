//! Logins: Argon2 password hashes, sessions (a random token in an HttpOnly, SameSite=Strict
//! cookie, with its own CSRF token), and the limit on failed logins per client address.

use crate::config::{WebRole, WebUser};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "qis_session";
/// Failed logins from one address within [`FAILURE_WINDOW`] after which it must wait.
pub const MAX_FAILURES: usize = 5;
/// How long a failed login counts against its address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Sessions kept at most; the least recently used goes first.
pub const MAX_SESSIONS: usize = 256;
/// Client addresses whose failures are remembered at most.
const MAX_TRACKED: usize = 4096;

/// The Argon2id hash of `password` in PHC form, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `hash` was made from. Slow on purpose (tens of milliseconds):
/// call it off the async runtime.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Login name.
    pub user: String,
    /// What they may do.
    pub role: WebRole,
    /// Sent back with every state-changing request (`X-CSRF-Token`, or the form's `csrf`).
    pub csrf: String,
    last_used: Instant,
}

/// The open sessions, by token.
#[derive(Debug)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    idle: Duration,
}

impl Sessions {
    /// No sessions; each ends after `idle` without a request.
    pub fn new(idle: Duration) -> Self {
        Self {
            by_token: HashMap::new(),
            idle,
        }
    }

    /// Opens a session for `user`; returns its token.
    pub fn open(&mut self, user: &WebUser, now: Instant) -> String {
        self.by_token
            .retain(|_, s| now.duration_since(s.last_used) < self.idle);
        if self.by_token.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(t, _)| t.clone())
            {
                self.by_token.remove(&oldest);
            }
        }
        let token = random_token();
        let session = Session {
            user: user.name.clone(),
            role: user.role,
            csrf: random_token(),
            last_used: now,
        };
        self.by_token.insert(token.clone(), session);
        token
    }

    /// The session of `token`, if it is open, marked as used at `now`.
    pub fn get(&mut self, token: &str, now: Instant) -> Option<Session> {
        let session = self.by_token.get_mut(token)?;
        if now.duration_since(session.last_used) >= self.idle {
            self.by_token.remove(token);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session of `token`.
    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// How many sessions are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_token.len()
    }
}

/// 32 random bytes, hex: a session or CSRF token.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Failed logins by client address.
#[derive(Debug, Default)]
pub struct Failures {
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Failures {
    /// How long `address` must wait before it may try again, if it must.
    pub fn wait(&mut self, address: IpAddr, now: Instant) -> Option<Duration> {
        let times = self.by_address.get_mut(&address)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        if times.is_empty() {
            self.by_address.remove(&address);
            return None;
        }
        (times.len() >= MAX_FAILURES)
            .then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(times[0])))
    }

    /// Counts a failed login from `address`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        if self.by_address.len() >= MAX_TRACKED && !self.by_address.contains_key(&address) {
            self.by_address.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if self.by_address.len() >= MAX_TRACKED {
                return;
            }
        }
        let times = self.by_address.entry(address).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Forgets the failures of `address` (it logged in).
    pub fn succeeded(&mut self, address: IpAddr) {
        self.by_address.remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: WebRole) -> WebUser {
        WebUser {
            name: "ana".into(),
            role,
            password_hash: String::new(),
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(crate::config::check_hash(&hash).is_ok());
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn sessions_end_when_idle_closed_or_crowded_out() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60));
        let token = s.open(&user(WebRole::Engineer), t0);
        let session = s.get(&token, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(
            (session.user.as_str(), session.role),
            ("ana", WebRole::Engineer)
        );
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, token);
        // Used at 59 s: idle from there.
        assert!(s.get(&token, t0 + Duration::from_secs(118)).is_some());
        assert!(s.get(&token, t0 + Duration::from_secs(178)).is_none());
        assert!(s.get("guess", t0).is_none());
        let token = s.open(&user(WebRole::Viewer), t0);
        s.close(&token);
        assert!(s.get(&token, t0).is_none());
        let first = s.open(&user(WebRole::Viewer), t0);
        for i in 1..=MAX_SESSIONS as u64 {
            s.open(&user(WebRole::Viewer), t0 + Duration::from_millis(i));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first, t0).is_none(), "the least recently used went");
    }

    #[test]
    fn an_address_waits_after_five_failures_until_the_first_ages_out() {
        let t0 = Instant::now();
        let mut f = Failures::default();
        let a: IpAddr = "10.0.0.7".parse().unwrap();
        let b: IpAddr = "10.0.0.8".parse().unwrap();
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(f.wait(a, t0 + Duration::from_secs(i)), None);
            f.failed(a, t0 + Duration::from_secs(i));
        }
        assert_eq!(
            f.wait(a, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(290))
        );
        assert_eq!(f.wait(b, t0 + Duration::from_secs(10)), None, "per address");
        assert_eq!(f.wait(a, t0 + FAILURE_WINDOW), None);
        f.failed(a, t0 + FAILURE_WINDOW);
        f.succeeded(a);
        assert_eq!(f.wait(a, t0 + FAILURE_WINDOW), None);
    }
}
