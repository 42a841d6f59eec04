//! The write-ahead-log record codec and segment scanner (FORMAT.md "Log segments").
//!
//! Python reference: `encode_record`, `check_record`, `_durable_record_after` and
//! `scan_records` in `mnemos/wal.py`. The scan returns the same records, end, status, offset
//! and reason (to the character) for every input, which `tests/test_wal_codec.py` checks.

use crate::crc32;

/// Bytes in a record header: crc, length, seq, prev_crc, txn_index, txn_count, unsynced.
pub const RECORD_HEADER_BYTES: usize = 32;
/// The largest record payload (FORMAT.md "Limits").
pub const EVENT_BYTES_MAX: u32 = 8 * 1024 * 1024;

/// Appends one record to `out` and returns its CRC. `unsynced` counts the records before this
/// one that were not yet known durable when it was written.
#[allow(clippy::too_many_arguments)]
pub fn encode_record(
    out: &mut Vec<u8>,
    salt: u32,
    seq: u64,
    prev_crc: u32,
    txn_index: u32,
    txn_count: u32,
    unsynced: u32,
    payload: &[u8],
) -> u32 {
    let len = u32::try_from(payload.len()).expect("payload length fits in u32");
    let mut tail = [0u8; RECORD_HEADER_BYTES - 4];
    tail[0..4].copy_from_slice(&len.to_le_bytes());
    tail[4..12].copy_from_slice(&seq.to_le_bytes());
    tail[12..16].copy_from_slice(&prev_crc.to_le_bytes());
    tail[16..20].copy_from_slice(&txn_index.to_le_bytes());
    tail[20..24].copy_from_slice(&txn_count.to_le_bytes());
    tail[24..28].copy_from_slice(&unsynced.to_le_bytes());
    let crc = crc32(payload, crc32(&tail, salt));
    out.reserve(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&tail);
    out.extend_from_slice(payload);
    crc
}

/// One committed record: its seq and CRC, and where its payload lies in the scanned bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub crc: u32,
    pub offset: usize,
    pub len: usize,
}

/// How the scanned bytes end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every byte belongs to a committed record.
    Clean,
    /// The bytes after `end` are an interrupted append: truncate to `end`.
    Torn,
    /// Damage at `bad_offset` with a record written after it was durable: not a crash.
    Corrupt,
}

/// What one pass over a run of record bytes found (offsets are into the scanned bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Records of complete transactions only, in order.
    pub records: Vec<Record>,
    /// Just after the last committed record.
    pub end: usize,
    /// Seq and CRC of that record (the starting values if none).
    pub seq: u64,
    pub crc: u32,
    pub status: Status,
    pub bad_offset: Option<usize>,
    pub reason: String,
}

struct Header {
    crc: u32,
    len: u32,
    seq: u64,
    prev: u32,
    index: u32,
    count: u32,
    unsynced: u32,
}

fn u32_at(buf: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"))
}

fn header_at(buf: &[u8], pos: usize) -> Header {
    Header {
        crc: u32_at(buf, pos),
        len: u32_at(buf, pos + 4),
        seq: u64::from_le_bytes(buf[pos + 8..pos + 16].try_into().expect("8 bytes")),
        prev: u32_at(buf, pos + 16),
        index: u32_at(buf, pos + 20),
        count: u32_at(buf, pos + 24),
        unsynced: u32_at(buf, pos + 28),
    }
}

/// The validity rule: the header of the valid record at `pos`, or why it is not valid.
/// `expect_count` is 0 when the record must start a transaction (its count is then free).
fn check_record(
    buf: &[u8],
    pos: usize,
    salt: u32,
    expect_seq: u128,
    expect_prev: u32,
    expect_index: u32,
    expect_count: u32,
) -> Result<Header, String> {
    let remaining = buf.len() - pos;
    if remaining < RECORD_HEADER_BYTES {
        return Err("truncated record header".into());
    }
    let h = header_at(buf, pos);
    if h.len > EVENT_BYTES_MAX {
        return Err(format!("record length {} exceeds EVENT_BYTES_MAX", h.len));
    }
    let end = RECORD_HEADER_BYTES + h.len as usize;
    if end > remaining {
        return Err("truncated record payload".into());
    }
    if crc32(&buf[pos + 4..pos + end], salt) != h.crc {
        return Err("record checksum mismatch".into());
    }
    if u128::from(h.seq) != expect_seq {
        return Err(format!(
            "sequence gap: expected seq {expect_seq}, found {}",
            h.seq
        ));
    }
    if h.prev != expect_prev {
        return Err("broken checksum chain (prev_crc does not match the previous record)".into());
    }
    if h.index != expect_index
        || h.index >= h.count
        || (expect_count != 0 && h.count != expect_count)
    {
        return Err(format!(
            "record {} of {} out of place in its transaction",
            h.index, h.count
        ));
    }
    Ok(h)
}

/// Is there a record at an offset >= `start` (fitting in the buffer, with a matching salted
/// CRC) written when `damaged_seq` was already durable? If so the damaged record had been
/// synced and was changed later: corruption. Otherwise the damage lies in the window a crash
/// may lose: a torn tail. Every byte offset is a candidate.
fn durable_record_after(buf: &[u8], start: usize, salt: u32, damaged_seq: u128) -> bool {
    if buf.len() < RECORD_HEADER_BYTES + start {
        return false;
    }
    let count = buf.len() - RECORD_HEADER_BYTES - start + 1;
    // Records after the damage number at most one per RECORD_HEADER_BYTES bytes.
    let damaged_seq = damaged_seq as i128; // at most 2^64: fits
    let max_seq = damaged_seq + (count / RECORD_HEADER_BYTES) as i128 + 1;
    (start..start + count).any(|pos| {
        let h = header_at(buf, pos);
        let seq = i128::from(h.seq);
        h.index < h.count
            && seq - 1 - i128::from(h.unsynced) >= damaged_seq
            && seq <= max_seq
            && h.len as usize <= buf.len() - RECORD_HEADER_BYTES - pos
            && crc32(
                &buf[pos + 4..pos + RECORD_HEADER_BYTES + h.len as usize],
                salt,
            ) == h.crc
    })
}

/// Validates the records in `data` (from a segment with `salt`), the first of which must have
/// seq `seq + 1` and prev_crc `crc` and start a transaction.
#[must_use]
pub fn scan(data: &[u8], salt: u32, seq: u64, crc: u32) -> Scan {
    let mut result = Scan {
        records: Vec::new(),
        end: 0,
        seq,
        crc,
        status: Status::Clean,
        bad_offset: None,
        reason: String::new(),
    };
    let mut pending: Vec<Record> = Vec::new();
    let (mut pos, mut seq, mut crc, mut index, mut count) = (0usize, seq, crc, 0u32, 0u32);
    while pos < data.len() {
        let next = u128::from(seq) + 1;
        let h = match check_record(data, pos, salt, next, crc, index, count) {
            Ok(h) => h,
            Err(reason) => {
                result.bad_offset = Some(pos);
                result.reason = reason;
                result.status = if durable_record_after(data, pos + 1, salt, next) {
                    Status::Corrupt
                } else {
                    Status::Torn
                };
                return result;
            }
        };
        seq = h.seq;
        crc = h.crc;
        let len = h.len as usize;
        pending.push(Record {
            seq,
            crc,
            offset: pos + RECORD_HEADER_BYTES,
            len,
        });
        pos += RECORD_HEADER_BYTES + len;
        index = h.index + 1;
        count = h.count;
        if index == count {
            result.records.append(&mut pending);
            result.end = pos;
            result.seq = seq;
            result.crc = crc;
            index = 0;
            count = 0;
        }
    }
    if !pending.is_empty() {
        result.status = Status::Torn;
        result.bad_offset = Some(result.end);
        result.reason = "transaction without all of its records".into();
    }
    result
}
