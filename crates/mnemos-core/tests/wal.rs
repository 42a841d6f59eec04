//! The segment scanner against hand-built logs: clean, torn and corrupt ends.

use mnemos_core::wal::{encode_record, scan, Status, RECORD_HEADER_BYTES};

fn log(salt: u32, txns: &[&[&[u8]]], lag: u32) -> Vec<u8> {
    let (mut out, mut seq, mut crc) = (Vec::new(), 1u64, 0u32);
    for txn in txns {
        for (i, payload) in txn.iter().enumerate() {
            let unsynced = lag.min(u32::try_from(seq - 1).unwrap());
            crc = encode_record(
                &mut out,
                salt,
                seq,
                crc,
                i as u32,
                txn.len() as u32,
                unsynced,
                payload,
            );
            seq += 1;
        }
    }
    out
}

#[test]
fn a_whole_log_scans_clean() {
    let data = log(9, &[&[b"one"], &[b"two", b"three"]], 0);
    let s = scan(&data, 9, 0, 0);
    assert_eq!(s.status, Status::Clean);
    assert_eq!(s.records.len(), 3);
    assert_eq!((s.end, s.seq), (data.len(), 3));
    let r = s.records[2];
    assert_eq!(&data[r.offset..r.offset + r.len], b"three");
}

#[test]
fn a_cut_inside_a_transaction_is_torn_at_its_start() {
    let data = log(9, &[&[b"one"], &[b"two", b"three"]], 0);
    let first = RECORD_HEADER_BYTES + 3;
    let s = scan(&data[..data.len() - 2], 9, 0, 0);
    assert_eq!(s.status, Status::Torn);
    assert_eq!((s.end, s.records.len()), (first, 1));
    assert_eq!(s.bad_offset, Some(data.len() - RECORD_HEADER_BYTES - 5));
}

#[test]
fn damage_before_a_durable_record_is_corruption() {
    let mut data = log(9, &[&[b"one"], &[b"two"], &[b"three"]], 0);
    data[RECORD_HEADER_BYTES] ^= 1;
    let s = scan(&data, 9, 0, 0);
    assert_eq!(s.status, Status::Corrupt);
    assert_eq!(
        (s.bad_offset, s.reason.as_str()),
        (Some(0), "record checksum mismatch")
    );
    // The same damage while the later records were all unsynced is a torn tail.
    let mut lagging = log(9, &[&[b"one"], &[b"two"], &[b"three"]], 5);
    lagging[RECORD_HEADER_BYTES] ^= 1;
    assert_eq!(scan(&lagging, 9, 0, 0).status, Status::Torn);
}

#[test]
fn another_salt_matches_nothing() {
    let data = log(9, &[&[b"one"]], 0);
    let s = scan(&data, 10, 0, 0);
    assert_eq!((s.status, s.records.len()), (Status::Torn, 0));
}
