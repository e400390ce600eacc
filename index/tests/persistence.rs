//! Save/load round trips and corruption handling on real files.

use chirp_index::{Error, Query, TagIndex};

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn sample() -> TagIndex {
    let mut ix = TagIndex::new();
    ix.insert(100, &tags(&["rust", "chirp"]));
    ix.insert(120, &tags(&["rust"]));
    ix.insert(110, &tags(&["chirp"]));
    ix.insert(130, &[]);
    ix.insert(140, &tags(&["rust"]));
    ix.remove(120);
    ix
}

fn all_results(ix: &TagIndex) -> Vec<Vec<u64>> {
    ["rust", "chirp", "none"]
        .iter()
        .map(|t| ix.query(&Query::Tag(t.to_string()), None, 100))
        .collect()
}

#[test]
fn round_trip_preserves_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shard.chix");
    let ix = sample();
    ix.save(&path).expect("save");
    let back = TagIndex::load(&path).expect("load");

    assert_eq!(all_results(&back), all_results(&ix));
    assert_eq!(back.len(), ix.len());
    assert_eq!(back.tag_count(), ix.tag_count());
    assert_eq!(back.high_water(), Some(140));
    assert!(!back.contains(120));
    // No temp file is left behind after a successful save.
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("readdir").collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn reloaded_index_keeps_accepting_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shard.chix");
    sample().save(&path).expect("save");
    let mut back = TagIndex::load(&path).expect("load");
    // Replaying an overlapping tail is the documented recovery path.
    assert_eq!(back.insert(140, &tags(&["rust"])), 4);
    back.insert(150, &tags(&["rust"]));
    back.insert(120, &tags(&["rust"]));
    let q = Query::Tag("rust".into());
    assert_eq!(back.query(&q, None, 10), vec![150, 140, 120, 100]);
}

#[test]
fn save_overwrites_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shard.chix");
    TagIndex::new().save(&path).expect("save empty");
    sample().save(&path).expect("save over");
    let back = TagIndex::load(&path).expect("load");
    assert_eq!(back.len(), 4);
}

#[test]
fn encoding_is_deterministic() {
    let ix = sample();
    let mut a = Vec::new();
    let mut b = Vec::new();
    ix.write_to(&mut a).expect("encode");
    TagIndex::from_bytes(&a)
        .expect("decode")
        .write_to(&mut b)
        .expect("re-encode");
    assert_eq!(a, b);
}

#[test]
fn every_single_byte_flip_is_reported_as_corrupt() {
    let mut bytes = Vec::new();
    sample().write_to(&mut bytes).expect("encode");
    for pos in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[pos] ^= mask;
            match TagIndex::from_bytes(&bad) {
                Err(Error::Corrupt(_)) => {}
                other => panic!("flip {mask:#x} at {pos}: {other:?}"),
            }
        }
    }
}

#[test]
fn flipped_file_on_disk_fails_to_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shard.chix");
    sample().save(&path).expect("save");
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(TagIndex::load(&path), Err(Error::Corrupt(_))));
}

#[test]
fn every_truncation_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shard.chix");
    let mut bytes = Vec::new();
    sample().write_to(&mut bytes).expect("encode");
    for len in 0..bytes.len() {
        assert!(TagIndex::from_bytes(&bytes[..len]).is_err(), "len {len}");
    }
    // Also through the mmap path, including the zero-length file.
    for len in [0, 3, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..len]).expect("write");
        assert!(
            matches!(TagIndex::load(&path), Err(Error::Corrupt(_))),
            "len {len}"
        );
    }
}

#[test]
fn future_version_with_valid_checksum_is_unsupported() {
    let mut bytes = Vec::new();
    sample().write_to(&mut bytes).expect("encode");
    bytes[4..6].copy_from_slice(&2u16.to_le_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    match TagIndex::from_bytes(&bytes) {
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn structurally_bad_file_with_valid_checksum_is_corrupt() {
    // A bitmap naming a doc past doc_count must be rejected even though the
    // CRC matches, since a buggy writer could produce exactly that.
    let mut ix = TagIndex::new();
    ix.insert(1, &tags(&["a"]));
    let mut bytes = Vec::new();
    ix.write_to(&mut bytes).expect("encode");
    // Header (8) + doc_count (8) + one id (8): rewrite doc_count to 0 and drop the id.
    let mut forged = bytes[..8].to_vec();
    forged.extend_from_slice(&0u64.to_le_bytes());
    forged.extend_from_slice(&bytes[24..bytes.len() - 4]);
    let crc = crc32fast::hash(&forged);
    forged.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        TagIndex::from_bytes(&forged),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn missing_file_is_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TagIndex::load(&dir.path().join("absent.chix"));
    assert!(matches!(err, Err(Error::Io(_))));
}
