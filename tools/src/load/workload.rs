//! Workload mixes and the requests behind each operation.

use bytes::Bytes;
use hyper::Method;
use rand::Rng;

use crate::error::{Error, Result};
use crate::load::network::{self, Zipf};

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /health`: the baseline, the cheapest route through the same server and client.
    Hello,
    /// `GET /feed?limit=20` as the acting user.
    HomeFeed,
    /// `GET /@u{i}/tweets?limit=20` of a random user.
    UserTimeline,
    /// `GET /@u{i}/profile` of a random user.
    Profile,
    /// `POST /tweet` as the acting user.
    Post,
    /// `POST /{me}/follow/@u{i}` of a random user.
    Follow,
}

impl Op {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Hello => "hello",
            Op::HomeFeed => "home_feed",
            Op::UserTimeline => "user_timeline",
            Op::Profile => "profile",
            Op::Post => "post",
            Op::Follow => "follow",
        }
    }
}

/// A weighted choice of operations.
#[derive(Debug, Clone)]
pub struct Mix {
    /// The mix's name.
    pub name: String,
    weights: Vec<(Op, u32)>,
    total: u32,
}

impl Mix {
    /// A named mix: `seed` (the seed's 5:1 read:write: home feed, user timeline and profile
    /// reads, post and follow writes), `dsb` (DeathStarBench social network: 60% home
    /// timeline, 30% user timeline, 10% compose), `feed` (home feed only), `hello`.
    pub fn named(name: &str) -> Result<Mix> {
        let weights = match name {
            "seed" => vec![
                (Op::HomeFeed, 10),
                (Op::UserTimeline, 10),
                (Op::Profile, 10),
                (Op::Post, 3),
                (Op::Follow, 3),
            ],
            "dsb" => vec![(Op::HomeFeed, 60), (Op::UserTimeline, 30), (Op::Post, 10)],
            "feed" => vec![(Op::HomeFeed, 1)],
            "hello" => vec![(Op::Hello, 1)],
            other => {
                return Err(Error::Invalid(format!(
                    "unknown mix {other:?}: seed, dsb, feed or hello"
                )))
            }
        };
        let total = weights.iter().map(|&(_, w)| w).sum();
        Ok(Mix {
            name: name.to_string(),
            weights,
            total,
        })
    }

    /// Draws an operation.
    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        let mut x = rng.gen_range(0..self.total.max(1));
        for &(op, w) in &self.weights {
            if x < w {
                return op;
            }
            x -= w;
        }
        Op::Hello
    }
}

/// A logged-in synthetic user.
#[derive(Debug, Clone)]
pub struct Session {
    /// User index.
    pub index: usize,
    /// User id as the node gave it.
    pub user_id: String,
    /// Bearer token.
    pub token: String,
}

/// A request to send.
pub struct Call {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Whether to send the session's token.
    pub auth: bool,
    /// JSON body.
    pub body: Option<Bytes>,
}

/// Builds the request of `op` acting as `me` in a network of `users` users.
pub fn call(op: Op, me: &Session, users: usize, tags: &Zipf, rng: &mut impl Rng) -> Call {
    let other = || -> usize {
        // Never the acting user, so a follow is never refused as a self-follow.
        let mut rng = rand::thread_rng();
        loop {
            let i = rng.gen_range(0..users.max(2));
            if i != me.index {
                return i;
            }
        }
    };
    let get = |path: String, auth: bool| Call {
        method: Method::GET,
        path,
        auth,
        body: None,
    };
    match op {
        Op::Hello => get("/health".into(), false),
        Op::HomeFeed => get("/feed?limit=20".into(), true),
        Op::UserTimeline => get(
            format!("/@{}/tweets?limit=20", network::handle(other())),
            false,
        ),
        Op::Profile => get(format!("/@{}/profile", network::handle(other())), false),
        Op::Post => {
            let text = network::tweet_text(me.index, rng.gen(), tags, rng);
            Call {
                method: Method::POST,
                path: "/tweet".into(),
                auth: true,
                body: Some(Bytes::from(serde_json::json!({ "text": text }).to_string())),
            }
        }
        Op::Follow => Call {
            method: Method::POST,
            path: format!("/{}/follow/@{}", me.user_id, network::handle(other())),
            auth: true,
            body: None,
        },
    }
}
