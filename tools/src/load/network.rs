//! The synthetic network: users `u0 … u{N-1}`, a power-law follow graph and tweets with
//! Zipf-popular hashtags. Deterministic for a seed.
//!
//! Out-degrees are exponential with the requested mean (so most users follow a few dozen and
//! some follow hundreds). Each followee is drawn, with probability `celebrity_share`, from a
//! Zipf(1) popularity ranking (user 0 the most popular), otherwise uniformly. With the
//! defaults at 1M users the top accounts get ~490k, ~245k, ~160k … followers and about 50
//! pass 10k, while the uniform part gives everyone else ~93 on average.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The password every synthetic user has (its hash is stored by the import).
pub const PASSWORD: &str = "chirp-load-password";

/// How the network is drawn.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetworkParams {
    /// Number of users.
    pub users: usize,
    /// Mean number of accounts each user follows.
    pub mean_following: f64,
    /// Share of follow edges drawn by popularity rank rather than uniformly.
    pub celebrity_share: f64,
    /// Tweets imported per user.
    pub tweets_per_user: usize,
    /// Size of the hashtag vocabulary (Zipf-popular).
    pub hashtags: usize,
    /// Random seed.
    pub seed: u64,
}

impl NetworkParams {
    /// The defaults for `users` users.
    pub fn new(users: usize) -> Self {
        NetworkParams {
            users,
            mean_following: 100.0,
            celebrity_share: 0.07,
            tweets_per_user: 1,
            hashtags: 1000,
            seed: 42,
        }
    }
}

/// The handle of synthetic user `i`.
pub fn handle(i: usize) -> String {
    format!("u{i}")
}

/// Draws ranks 0..n with probability proportional to 1/(rank+1)^s.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A Zipf distribution over `n` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for r in 0..n {
            total += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.gen();
        self.cdf
            .partition_point(|&c| c < u)
            .min(self.cdf.len().saturating_sub(1))
    }
}

const CHUNK: usize = 1 << 14;

/// The follow edges (follower, followee), sorted, without duplicates or self-follows.
/// `progress` is called with the number of users done, from two threads.
pub fn follows(p: &NetworkParams, progress: &(dyn Fn(u64) + Sync)) -> Vec<(u32, u32)> {
    let n = p.users;
    if n < 2 {
        return Vec::new();
    }
    let zipf = Zipf::new(n, 1.0);
    let chunks = n.div_ceil(CHUNK);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<(u32, u32)>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if c >= chunks {
                            return out;
                        }
                        out.push((c, chunk_edges(p, &zipf, c)));
                        progress(CHUNK.min(n - c * CHUNK) as u64);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    parts.sort_by_key(|(c, _)| *c);
    let total = parts.iter().map(|(_, e)| e.len()).sum();
    let mut edges = Vec::with_capacity(total);
    for (_, e) in parts {
        edges.extend(e);
    }
    edges
}

fn chunk_edges(p: &NetworkParams, zipf: &Zipf, chunk: usize) -> Vec<(u32, u32)> {
    let n = p.users;
    let mut rng = StdRng::seed_from_u64(p.seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9));
    let cap = (n - 1).min(5000);
    let mut out = Vec::new();
    let mut picks = Vec::new();
    for user in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        let want = ((-p.mean_following * u.ln()).round() as usize).clamp(1, cap);
        picks.clear();
        // Duplicates are dropped and redrawn a few times; popular ranks repeat often.
        for _ in 0..4 {
            while picks.len() < want {
                let f = if rng.gen_bool(p.celebrity_share.clamp(0.0, 1.0)) {
                    zipf.sample(&mut rng)
                } else {
                    rng.gen_range(0..n)
                };
                if f != user {
                    picks.push(f as u32);
                }
            }
            picks.sort_unstable();
            picks.dedup();
            if picks.len() >= want {
                break;
            }
        }
        out.extend(picks.iter().map(|&f| (user as u32, f)));
    }
    out
}

/// The text of synthetic tweet `k` of user `i`: one or two Zipf-popular hashtags.
pub fn tweet_text(i: usize, k: usize, tags: &Zipf, rng: &mut impl Rng) -> String {
    let a = tags.sample(rng);
    if rng.gen_bool(0.3) {
        let b = tags.sample(rng);
        format!("chirp {k} from u{i} on #tag{a} and #tag{b}")
    } else {
        format!("chirp {k} from u{i} about #tag{a}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_has_the_requested_shape() {
        let mut p = NetworkParams::new(5000);
        p.mean_following = 50.0;
        let edges = follows(&p, &|_| {});
        let mean = edges.len() as f64 / 5000.0;
        assert!((40.0..60.0).contains(&mean), "mean out-degree {mean}");
        assert!(
            edges.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(edges.iter().all(|&(a, b)| a != b));
        let mut followers = vec![0u32; 5000];
        for &(_, b) in &edges {
            followers[b as usize] += 1;
        }
        let median = {
            let mut f = followers.clone();
            f.sort_unstable();
            f[2500]
        };
        assert!(
            followers[0] > 10 * median,
            "user 0 is popular: {}",
            followers[0]
        );
        assert_eq!(follows(&p, &|_| {}), edges, "deterministic");
    }

    #[test]
    fn zipf_prefers_low_ranks() {
        let z = Zipf::new(100, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        let hits = (0..10_000).filter(|_| z.sample(&mut rng) == 0).count();
        assert!((1500..2400).contains(&hits), "rank 0 drawn {hits} times");
    }
}
