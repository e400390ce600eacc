//! Time-ordered 64-bit ids and the stable user → shard map.
//!
//! Layout (most significant first): 1 zero bit, 41 bits of milliseconds since the Chirp epoch
//! (2024-01-01T00:00:00Z, good for 69 years), 10 bits of shard, 12 bits of per-millisecond
//! sequence. Larger id means newer, ids never collide across shards, and a tweet id names the
//! shard holding it.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds of the Chirp epoch, 2024-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
/// Bits given to the shard part.
pub const SHARD_BITS: u32 = 10;
/// Bits given to the per-millisecond sequence.
pub const SEQ_BITS: u32 = 12;
/// The largest number of shards an id can name.
pub const MAX_SHARDS: usize = 1 << SHARD_BITS;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const SHARD_MASK: u64 = (1 << SHARD_BITS) - 1;

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The shard part of an id.
pub fn shard_of_id(id: u64) -> usize {
    ((id >> SEQ_BITS) & SHARD_MASK) as usize
}

/// Unix milliseconds at which an id was minted.
pub fn unix_ms_of_id(id: u64) -> u64 {
    (id >> (SEQ_BITS + SHARD_BITS)) + EPOCH_MS
}

/// The smallest id minted at or after the given Unix milliseconds (for time-bounded scans).
pub fn min_id_at(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(EPOCH_MS) << (SEQ_BITS + SHARD_BITS)
}

/// Stable user → shard map: a 64-bit mix of the id, reduced modulo the shard count.
pub fn shard_of_user(user_id: u64, shards: usize) -> usize {
    // splitmix64's finalizer: sequential ids spread evenly, and it never changes between builds.
    let mut z = user_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % shards.max(1) as u64) as usize
}

/// Stable handle → shard map (FNV-1a of the lowercase handle).
pub fn shard_of_handle(lower_handle: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lower_handle.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    (h % shards.max(1) as u64) as usize
}

/// Mints strictly increasing ids for one shard part.
#[derive(Debug)]
pub struct IdGen {
    shard: u64,
    // (milliseconds since the Chirp epoch, last sequence used)
    state: Mutex<(u64, u64)>,
}

impl IdGen {
    /// A generator for `shard` that never returns an id at or below `floor` (the largest id
    /// already stored), so a clock that steps back across a restart cannot repeat an id.
    pub fn new(shard: usize, floor: u64) -> Self {
        let floor_ms = floor >> (SEQ_BITS + SHARD_BITS);
        let floor_seq = floor & SEQ_MASK;
        IdGen {
            shard: shard as u64 & SHARD_MASK,
            state: Mutex::new((floor_ms, floor_seq)),
        }
    }

    /// Never returns an id at or below `floor` from now on: a copy that was a replica
    /// received ids another primary minted (perhaps on a clock ahead of this one's) and
    /// raises its floor to the newest before it mints.
    pub fn raise_floor(&self, floor: u64) {
        let at = (floor >> (SEQ_BITS + SHARD_BITS), floor & SEQ_MASK);
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if at > *state {
            *state = at;
        }
    }

    /// The next id.
    pub fn next_id(&self) -> u64 {
        let now = now_unix_ms().saturating_sub(EPOCH_MS);
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (last_ms, last_seq) = *state;
        let (ms, seq) = if now > last_ms {
            (now, 0)
        } else if last_seq < SEQ_MASK {
            (last_ms, last_seq + 1)
        } else {
            // Sequence exhausted within one millisecond: borrow the next millisecond.
            (last_ms + 1, 0)
        };
        *state = (ms, seq);
        (ms << (SEQ_BITS + SHARD_BITS)) | (self.shard << SEQ_BITS) | seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_the_shard() {
        let gen = IdGen::new(7, 0);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = gen.next_id();
            assert!(id > last);
            assert_eq!(shard_of_id(id), 7);
            last = id;
        }
        assert!(last < (1 << 63));
    }

    #[test]
    fn ids_stay_above_the_floor() {
        let far = (now_unix_ms() - EPOCH_MS + 60_000) << (SEQ_BITS + SHARD_BITS);
        let gen = IdGen::new(1, far | (1 << SEQ_BITS) | 5);
        assert!(gen.next_id() > far | (1 << SEQ_BITS) | 5);
        // Raised later: above the new floor; a lower one changes nothing.
        let gen = IdGen::new(1, 0);
        let first = gen.next_id();
        gen.raise_floor(far | (1 << SEQ_BITS) | 9);
        let raised = gen.next_id();
        assert!(raised > far | (1 << SEQ_BITS) | 9, "{raised} {first}");
        gen.raise_floor(first);
        assert!(gen.next_id() > raised);
    }

    #[test]
    fn id_time_round_trips() {
        let id = IdGen::new(0, 0).next_id();
        let ms = unix_ms_of_id(id);
        assert!(now_unix_ms() - ms < 5_000);
        assert!(min_id_at(ms) <= id);
    }

    #[test]
    fn user_shards_are_stable_and_spread() {
        let mut counts = [0usize; 4];
        for id in 0..4000u64 {
            let s = shard_of_user(id, 4);
            assert_eq!(s, shard_of_user(id, 4));
            counts[s] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(shard_of_user(12345, 1), 0);
        assert!(shard_of_handle("alice", 4) < 4);
    }
}
