//! The log segment decoder, `wal::scan` (FORMAT.md "Log segments"), on arbitrary bytes.
//!
//! The input is read the way `mnemos.wal` reads a segment file: salt, first seq and prev_crc
//! from the 32-byte header (whatever they hold: the scan must take any), records after it.
//! Whatever the bytes, the scan must not panic, and its answer must hold together: the
//! committed records tile the bytes before `end` from offset 0, chained seq by seq, and
//! re-encoding them (`wal::encode_record`) gives back exactly those bytes; the status agrees
//! with `end` and `bad_offset`; and the committed prefix alone scans clean, to the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnemos_core::wal::{self, Status, RECORD_HEADER_BYTES};

/// FORMAT.md "Segment header".
const SEGMENT_HEADER_BYTES: usize = 32;

fn u32_at(bytes: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], pos: usize) -> u64 {
    u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"))
}

fn check(data: &[u8], salt: u32, seq: u64, crc: u32) {
    let scan = wal::scan(data, salt, seq, crc);
    assert!(scan.end <= data.len(), "end {} past the data", scan.end);
    match scan.status {
        Status::Clean => {
            assert_eq!(scan.end, data.len(), "clean, yet bytes after end");
            assert_eq!(scan.bad_offset, None);
            assert!(scan.reason.is_empty());
        }
        Status::Torn | Status::Corrupt => {
            let bad = scan.bad_offset.expect("damage has an offset");
            assert!(scan.end <= bad && bad <= data.len(), "bad offset {bad}");
            assert!(!scan.reason.is_empty());
        }
    }
    let (mut pos, mut last_seq, mut last_crc) = (0usize, seq, crc);
    let mut again = Vec::with_capacity(scan.end);
    for r in &scan.records {
        assert_eq!(r.offset, pos + RECORD_HEADER_BYTES, "records leave a gap");
        assert!(r.offset + r.len <= scan.end, "record past end");
        assert_eq!(Some(r.seq), last_seq.checked_add(1), "seq out of order");
        let header = &data[pos..r.offset];
        assert_eq!(u32_at(header, 0), r.crc);
        assert_eq!(u32_at(header, 4) as usize, r.len);
        assert_eq!(u64_at(header, 8), r.seq);
        assert_eq!(u32_at(header, 16), last_crc, "chain broken");
        let crc = wal::encode_record(
            &mut again,
            salt,
            r.seq,
            last_crc,
            u32_at(header, 20),
            u32_at(header, 24),
            u32_at(header, 28),
            &data[r.offset..r.offset + r.len],
        );
        assert_eq!(crc, r.crc);
        (pos, last_seq, last_crc) = (r.offset + r.len, r.seq, r.crc);
    }
    assert_eq!(pos, scan.end, "records do not end at end");
    assert_eq!((scan.seq, scan.crc), (last_seq, last_crc));
    assert!(again == data[..scan.end], "re-encoding differs");
    if scan.status != Status::Clean {
        let prefix = wal::scan(&data[..scan.end], salt, seq, crc);
        assert_eq!(prefix.status, Status::Clean);
        assert_eq!(prefix.records, scan.records);
        assert_eq!((prefix.seq, prefix.crc), (scan.seq, scan.crc));
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= SEGMENT_HEADER_BYTES {
        let (header, body) = data.split_at(SEGMENT_HEADER_BYTES);
        // first_seq 0 is damage to a reader, but the scan itself must take any seq.
        let seq = u64_at(header, 16).wrapping_sub(1);
        check(body, u32_at(header, 12), seq, u32_at(header, 24));
    } else {
        check(data, 0, 0, 0);
    }
});
