//! Property tests of the frame codec: round trips, truncation and corruption.

use proptest::prelude::*;

use super::*;

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    let role = prop_oneof![Just(Role::Primary), Just(Role::Replica)];
    let code = prop_oneof![
        Just(ErrorCode::NotPrimary),
        Just(ErrorCode::Trimmed),
        Just(ErrorCode::Deposed),
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::Internal),
        Just(ErrorCode::NotFound),
    ];
    prop_oneof![
        (
            ".{0,12}",
            ".{0,12}",
            any::<u32>(),
            role,
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(node, cluster, shard, role, epoch, last_lsn, last_epoch)| Frame::Hello {
                    node,
                    cluster,
                    shard,
                    role,
                    epoch,
                    last_lsn,
                    last_epoch
                }
            ),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            ".{0,20}"
        )
            .prop_map(|(shard, epoch, last_lsn, oldest_lsn, common_lsn, api)| {
                Frame::Welcome {
                    shard,
                    epoch,
                    last_lsn,
                    oldest_lsn,
                    common_lsn,
                    api,
                }
            }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(shard, epoch, after_lsn, max_bytes, wait_ms)| Frame::Pull {
                    shard,
                    epoch,
                    after_lsn,
                    max_bytes,
                    wait_ms
                }
            ),
        (
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec((any::<u64>(), bytes_strategy(40)), 0..5),
            any::<u64>()
        )
            .prop_map(|(shard, epoch, entries, primary_last_lsn)| Frame::Entries {
                shard,
                epoch,
                entries,
                primary_last_lsn
            }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(shard, applied_lsn)| Frame::Ack { shard, applied_lsn }),
        any::<u32>().prop_map(|shard| Frame::Snapshot { shard }),
        (
            any::<u32>(),
            ".{0,16}",
            any::<u64>(),
            bytes_strategy(64),
            any::<bool>()
        )
            .prop_map(|(shard, file, offset, data, last)| Frame::CheckpointChunk {
                shard,
                file,
                offset,
                data,
                last
            }),
        (code, ".{0,30}").prop_map(|(code, message)| Frame::Error { code, message }),
        (".{0,12}", any::<u32>(), bytes_strategy(64)).prop_map(|(cluster, shard, body)| {
            Frame::Step {
                cluster,
                shard,
                body,
            }
        }),
        (any::<bool>(), bytes_strategy(64)).prop_map(|(ok, body)| Frame::StepReply { ok, body }),
        (".{0,12}", "[0-9a-f]{0,64}")
            .prop_map(|(cluster, sha256)| Frame::BlobGet { cluster, sha256 }),
        (bytes_strategy(64), any::<bool>()).prop_map(|(data, last)| Frame::BlobData { data, last }),
    ]
}

proptest! {
    #[test]
    fn decode_inverts_encode(frame in frame_strategy(), tail in bytes_strategy(8)) {
        let mut bytes = frame.to_bytes();
        let n = bytes.len();
        bytes.extend_from_slice(&tail);
        let decoded = decode(&bytes);
        prop_assert!(matches!(&decoded, Ok(Some((f, used))) if *f == frame && *used == n));
    }

    #[test]
    fn every_truncation_is_incomplete(frame in frame_strategy()) {
        let bytes = frame.to_bytes();
        for cut in 0..bytes.len() {
            prop_assert!(matches!(decode(&bytes[..cut]), Ok(None)), "cut at {}", cut);
        }
    }

    #[test]
    fn a_corrupted_byte_never_yields_a_frame(
        frame in frame_strategy(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let mut bytes = frame.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        // Incomplete is acceptable (a grown length field); a decoded frame never is.
        prop_assert!(!matches!(decode(&bytes), Ok(Some(_))), "flip at {}", i);
    }
}

#[test]
fn frames_stream_back_to_back() {
    let frames = [
        Frame::Ack {
            shard: 1,
            applied_lsn: 7,
        },
        Frame::Snapshot { shard: 2 },
    ];
    let mut buf = bytes::BytesMut::new();
    for f in &frames {
        f.encode(&mut buf);
    }
    for f in &frames {
        assert!(matches!(decode_buf(&mut buf), Ok(Some(g)) if g == *f));
    }
    assert!(buf.is_empty());
    assert!(matches!(decode_buf(&mut buf), Ok(None)));
}

#[test]
fn oversized_and_unknown_frames_are_invalid() {
    let mut huge = vec![FRAME_V1, 5];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(decode(&huge), Err(Error::Protocol(_))));
    assert!(matches!(decode(&[9]), Err(Error::Protocol(_))));
    assert!(matches!(decode(&[FRAME_V1, 0]), Err(Error::Protocol(_))));
}
