//! Group commit and oplog replay of a single shard.
use std::sync::Arc;

use super::*;
use crate::batch::Entry;
use crate::keys::{Counter, CF_COUNTERS, CF_HOME, CF_TWEETS};

fn open(dir: &Path) -> Shard {
    let opts = ShardOptions {
        block_cache: Cache::new_lru_cache(1 << 20),
        sync_writes: false,
        shared: Arc::new(ShardShared::new()),
    };
    let shard = Shard::open(dir, 0, 1, true, &opts).expect("open shard");
    shard.set_writable(true);
    shard
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

fn contents(shard: &Shard) -> Vec<(&'static str, Rows)> {
    keys::ALL_CFS
        .iter()
        .filter(|cf| **cf != CF_META)
        .map(|cf| (*cf, shard.scan_all(cf).expect("scan")))
        .collect()
}

#[test]
fn concurrent_writes_get_contiguous_lsns_and_replay_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = Arc::new(open(&dir.path().join("p")));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let shard = Arc::clone(&primary);
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let mut b = Batch::new();
                    b.put(CF_TWEETS, keys::id_key(t * 1000 + i), b"doc");
                    b.merge(
                        CF_COUNTERS,
                        keys::counter_key(t, Counter::Tweets),
                        keys::counter_value(1),
                    );
                    if i % 10 == 0 {
                        b.delete_range(CF_HOME, keys::pair_key(t, 0), keys::pair_key(t, i));
                    }
                    shard.write(b).expect("write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    assert_eq!(primary.last_lsn(), 1600);
    let log = primary.read_oplog(0, usize::MAX).expect("oplog");
    let lsns: Vec<u64> = log.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, (1..=1600).collect::<Vec<_>>());

    let replica = open(&dir.path().join("r"));
    for (_, raw) in &log {
        replica.apply_entry(raw).expect("apply");
    }
    assert_eq!(contents(&replica), contents(&primary));
    // Re-applying or skipping ahead is refused, never silently applied.
    assert!(matches!(
        replica.apply_entry(&log[5].1),
        Err(Error::Corrupt(_))
    ));
    let far = Entry {
        epoch: 1,
        lsn: 5000,
        ops: vec![],
    }
    .encode();
    assert!(matches!(replica.apply_entry(&far), Err(Error::Corrupt(_))));
    assert_eq!(replica.last_lsn(), 1600);
}

#[test]
fn the_log_position_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let shard = open(dir.path());
        for i in 0..5u64 {
            let mut b = Batch::new();
            b.put(CF_TWEETS, keys::id_key(i), b"x");
            shard.write(b).expect("write");
        }
        assert!(shard.read_oplog(3, 1).expect("oplog").len() == 1);
    }
    let shard = open(dir.path());
    assert_eq!(shard.last_lsn(), 5);
    assert_eq!(shard.epoch(), 1);
    let mut b = Batch::new();
    b.delete(CF_TWEETS, keys::id_key(0));
    shard.write(b).expect("write");
    assert_eq!(shard.last_lsn(), 6);
}

/// A full walk of a pair column family (prefix extractor on the owner) sees every row of every
/// owner, across memtable and several SST files: RocksDB's prefix-mode seek must not be what
/// `scan_all`/`for_each_from` use.
#[test]
fn full_walks_of_pair_column_families_see_every_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shard = open(dir.path());
    let mut expected = 0;
    for owner in 1..=60u64 {
        let mut b = Batch::new();
        for item in 0..(owner % 5) {
            b.put(CF_HOME, keys::pair_key(owner, item + 1), b"");
            expected += 1;
        }
        shard.write(b).expect("write");
        if owner % 10 == 0 {
            shard.flush_cf(CF_HOME).expect("flush");
        }
    }
    assert_eq!(shard.scan_all(CF_HOME).expect("scan").len(), expected);
    let mut from_middle = 0;
    shard
        .for_each_from(CF_HOME, &keys::pair_key(30, 0), |_, _| {
            from_middle += 1;
            Ok(())
        })
        .expect("walk");
    let want: u64 = (30..=60u64).map(|o| o % 5).sum();
    assert_eq!(from_middle, want as usize);
}
