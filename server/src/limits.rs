//! Rate limits on what an attacker (or a runaway client) can make the node do: wrong passwords
//! per account and per client address, sign-ups per address, writes per user. Each is a
//! GCRA limiter (the `governor` crate) keyed by what it limits; a request over a limit gets
//! 429 with `Retry-After` (RFC 6585) and `RateLimit-Limit`/`-Remaining`/`-Reset` headers.
//!
//! Wrong passwords lock out rather than throttle: once the failures of an account (or of an
//! address) exceed their quota, every log-in attempt for it is refused until the quota has
//! room again, so guessing costs time whatever the guesses; a right password after the
//! `Retry-After` works.
//!
//! The client address is the TCP peer; `X-Forwarded-For` is believed only when
//! `trust_forwarded_for` is set (a reverse proxy in front appends the real client as the last
//! entry), since any client can send that header.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::Incoming;
use hyper::Request;

use crate::routes::Peer;

/// A refusal: how long to wait, and the limit that was hit (for the `RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
    /// Requests the limit allows per window.
    pub limit: u32,
    /// What was limited, for the problem detail.
    pub what: &'static str,
}

/// The configured limits: `count` events per `window`; a count of 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Wrong passwords per account per window.
    pub login_failures_per_account: u32,
    /// Wrong passwords per client address per window.
    pub login_failures_per_address: u32,
    /// Window of the two log-in limits.
    pub login_window: Duration,
    /// Sign-ups per client address per hour.
    pub signups_per_address_per_hour: u32,
    /// Writes (posts, follows, profile edits, uploads, deletes) per user per minute.
    pub writes_per_user_per_minute: u32,
    /// Take the client address from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}

/// One keyed limiter with its settings; None when turned off.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    limit: u32,
    what: &'static str,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(count: u32, window: Duration, what: &'static str) -> Option<Keyed<K>> {
        let burst = NonZeroU32::new(count)?;
        let quota = Quota::with_period(window / count)?.allow_burst(burst);
        Some(Keyed {
            limiter: RateLimiter::keyed(quota),
            limit: count,
            what,
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one cell for `key`; on refusal, how long until one is free.
    fn take(&self, key: &K) -> Result<(), Limited> {
        // Forget keys that are back to a full quota now and then, so the map stays small.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Limited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                limit: self.limit,
                what: self.what,
            }
        })
    }
}

/// Keys locked out until a time, after their failure quota ran out.
struct Lockout<K: Hash + Eq + Clone> {
    failures: Keyed<K>,
    until: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Lockout<K> {
    fn new(count: u32, window: Duration, what: &'static str) -> Option<Lockout<K>> {
        Some(Lockout {
            failures: Keyed::new(count, window, what)?,
            until: Mutex::new(HashMap::new()),
        })
    }

    fn check(&self, key: &K) -> Result<(), Limited> {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match until.get(key) {
            Some(&t) if t > now => Err(Limited {
                retry_after_secs: (t - now).as_secs_f64().ceil().max(1.0) as u64,
                limit: self.failures.limit,
                what: self.failures.what,
            }),
            Some(_) => {
                until.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn fail(&self, key: &K) {
        if let Err(limited) = self.failures.take(key) {
            let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
            if until.len() > 100_000 {
                let now = Instant::now();
                until.retain(|_, t| *t > now);
            }
            until.insert(
                key.clone(),
                Instant::now() + Duration::from_secs(limited.retry_after_secs),
            );
        }
    }
}

/// Every limit of a node.
pub struct Limits {
    login_account: Option<Lockout<String>>,
    login_address: Option<Lockout<IpAddr>>,
    signups: Option<Keyed<IpAddr>>,
    writes: Option<Keyed<u64>>,
    trust_forwarded_for: bool,
}

impl Limits {
    /// Limits as configured.
    pub fn new(s: &LimitSettings) -> Limits {
        Limits {
            login_account: Lockout::new(
                s.login_failures_per_account,
                s.login_window,
                "wrong passwords for this account",
            ),
            login_address: Lockout::new(
                s.login_failures_per_address,
                s.login_window,
                "wrong passwords from this address",
            ),
            signups: Keyed::new(
                s.signups_per_address_per_hour,
                Duration::from_secs(3600),
                "sign-ups from this address",
            ),
            writes: Keyed::new(
                s.writes_per_user_per_minute,
                Duration::from_secs(60),
                "writes by this user",
            ),
            trust_forwarded_for: s.trust_forwarded_for,
        }
    }

    /// No limits at all.
    pub fn none() -> Limits {
        Limits {
            login_account: None,
            login_address: None,
            signups: None,
            writes: None,
            trust_forwarded_for: false,
        }
    }

    /// The client's address: the peer, or the last `X-Forwarded-For` entry when trusted.
    pub fn client(&self, req: &Request<Incoming>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.extensions().get::<Peer>().map(|p| p.0.ip())
    }

    /// Whether a log-in for `handle` from `client` may be tried now.
    pub fn login_allowed(&self, handle: &str, client: Option<IpAddr>) -> Result<(), Limited> {
        if let Some(l) = &self.login_account {
            l.check(&handle.to_ascii_lowercase())?;
        }
        if let (Some(l), Some(ip)) = (&self.login_address, client) {
            l.check(&ip)?;
        }
        Ok(())
    }

    /// Records a wrong password for `handle` from `client`.
    pub fn login_failed(&self, handle: &str, client: Option<IpAddr>) {
        if let Some(l) = &self.login_account {
            l.fail(&handle.to_ascii_lowercase());
        }
        if let (Some(l), Some(ip)) = (&self.login_address, client) {
            l.fail(&ip);
        }
    }

    /// Takes a sign-up from `client`.
    pub fn sign_up(&self, client: Option<IpAddr>) -> Result<(), Limited> {
        match (&self.signups, client) {
            (Some(l), Some(ip)) => l.take(&ip),
            _ => Ok(()),
        }
    }

    /// Takes a write by `user`.
    pub fn write(&self, user: u64) -> Result<(), Limited> {
        match &self.writes {
            Some(l) => l.take(&user),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            login_failures_per_account: 3,
            login_failures_per_address: 100,
            login_window: Duration::from_secs(60),
            signups_per_address_per_hour: 2,
            writes_per_user_per_minute: 5,
            trust_forwarded_for: false,
        }
    }

    #[test]
    fn failures_past_the_quota_lock_the_account_out() {
        let limits = Limits::new(&settings());
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(limits.login_allowed("Alice", ip).is_ok());
            limits.login_failed("Alice", ip);
        }
        assert!(
            limits.login_allowed("alice", ip).is_ok(),
            "3 failures are allowed"
        );
        limits.login_failed("alice", ip);
        let refused = limits.login_allowed("ALICE", ip).expect_err("locked out");
        assert_eq!(refused.limit, 3);
        assert!((1..=20).contains(&refused.retry_after_secs), "{refused:?}");
        assert!(
            limits.login_allowed("bob", ip).is_ok(),
            "other accounts unaffected"
        );
    }

    #[test]
    fn writes_and_sign_ups_are_counted_per_key() {
        let limits = Limits::new(&settings());
        for _ in 0..5 {
            assert!(limits.write(7).is_ok());
        }
        assert!(limits.write(7).is_err());
        assert!(limits.write(8).is_ok());
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(limits.sign_up(ip).is_ok());
        assert!(limits.sign_up(ip).is_ok());
        assert!(limits.sign_up(ip).is_err());
        assert!(Limits::none().write(7).is_ok());
    }
}
