//! The ANN graph decoder, `ann::Hnsw::from_bytes` (FORMAT.md "ANN_GRAPH section"), on
//! arbitrary bytes.
//!
//! Each input is tried three ways: as it is; sealed (a right magic, version, `total_bytes` and
//! CRC written over it, so mutations get past the checksum to the field checks); and, when its
//! header asks for a small graph, resized to the length that header needs, `upper_blocks` set
//! to the sum of its levels, then sealed (so they reach the link checks and the loaded graph).
//! - Every refusal is `AnnError::Corrupt` at an offset inside the bytes.
//! - Bytes that load are the canonical form: `to_bytes` gives them back.
//! - A loaded graph works: searches return `min(k, allowed live rows)` distinct live rows,
//!   and an insert, a delete, a renumber and another save and load all succeed.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use mnemos_core::ann::{AnnError, Hnsw, FORMAT_VERSION, HEADER_BYTES, LEVEL_MAX, MAGIC};
use mnemos_core::crc32;

/// The largest graph the resizing way builds: keeps executions fast and memory small.
const RESIZED_BYTES_MAX: usize = 1 << 20;
/// Rows kept by the renumber: the rows below this keep their numbers.
const RENUMBER_ROWS: u32 = 4096;

fn u32_at(bytes: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"))
}

/// Writes a right magic, version, total length and CRC over `bytes` (at least a header and CRC).
fn seal(bytes: &mut [u8]) {
    let n = bytes.len();
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[48..56].copy_from_slice(&(n as u64).to_le_bytes());
    let crc = crc32(&bytes[..n - 4], 0);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// `data` resized to the length its header's sizes need, when that is small.
fn resized(data: &[u8]) -> Option<Vec<u8>> {
    let dim = u32_at(data, 12) as usize;
    let m = u32_at(data, 16) as usize;
    let n = u32_at(data, 28) as usize;
    if dim > 64 || m > 128 || n > 512 {
        return None;
    }
    let mut bytes = data.to_vec();
    let levels_at = HEADER_BYTES + 4 * n;
    if bytes.len() < levels_at + n {
        bytes.resize(levels_at + n, 0);
    }
    let blocks: usize = bytes[levels_at..levels_at + n]
        .iter()
        .map(|&l| usize::from(l.min(LEVEL_MAX)))
        .sum();
    bytes[40..44].copy_from_slice(&(blocks as u32).to_le_bytes());
    let pad = (4 - (2 * n) % 4) % 4;
    let len =
        HEADER_BYTES + 6 * n + pad + 4 * n * dim + 4 * n * (1 + 2 * m) + 4 * blocks * (1 + m) + 4;
    if len > RESIZED_BYTES_MAX {
        return None;
    }
    bytes.resize(len, 0);
    seal(&mut bytes);
    Some(bytes)
}

/// A non-zero query of `dim` values taken from `seed`.
fn query(dim: usize, seed: &[u8]) -> Vec<f32> {
    (0..dim)
        .map(|i| f32::from(seed.get(i).copied().unwrap_or(1)) - 127.5)
        .collect()
}

/// Searches `index` and checks the answer: `min(k, allowed live rows)` distinct live rows that
/// the mask allows.
fn search(index: &Hnsw, q: &[f32], k: usize, mask: Option<&[u8]>) -> Vec<(u32, f32)> {
    let hits = index.search(q, k, None, mask).expect("a valid query");
    let allowed = |row: u32| mask.is_none_or(|m| m.get(row as usize).is_some_and(|&b| b != 0));
    let mut seen = BTreeSet::new();
    for &(row, _) in &hits {
        assert!(index.contains(row), "row {row} is not live");
        assert!(allowed(row), "row {row} is masked out");
        assert!(seen.insert(row), "row {row} twice");
    }
    let candidates = match mask {
        None => index.len(),
        Some(m) => (0..m.len() as u32)
            .filter(|&r| allowed(r) && index.contains(r))
            .count(),
    };
    assert_eq!(hits.len(), k.min(candidates), "too few hits");
    hits
}

/// Hits with their scores as bits: a loaded graph's vectors need not be unit length, so a
/// score can overflow to infinity or NaN, and the same answer must still compare equal.
fn bits(hits: &[(u32, f32)]) -> Vec<(u32, u32)> {
    hits.iter()
        .map(|&(row, score)| (row, score.to_bits()))
        .collect()
}

fn check(data: &[u8]) {
    let mut index = match Hnsw::from_bytes(data) {
        Ok(index) => index,
        Err(AnnError::Corrupt { offset, .. }) => {
            assert!(offset <= data.len(), "offset {offset} past the bytes");
            return;
        }
        Err(other) => panic!("not a Corrupt error: {other:?}"),
    };
    assert_eq!(index.serialized_len(), data.len());
    assert!(index.to_bytes() == data, "not the canonical form");
    assert!(index.unreachable() <= index.len());

    let q = query(index.dim(), &data[HEADER_BYTES..]);
    let k = (data[HEADER_BYTES] as usize % 8) + 1;
    let hits = search(&index, &q, k, None);
    let mask: Vec<u8> = data.iter().map(|b| b & 1).collect();
    search(&index, &q, k, Some(&mask));
    let batch = index
        .search_batch(&[q.clone(), q.clone()].concat(), k, Some(k), None, 1)
        .expect("a valid batch");
    assert_eq!(bits(&batch[0]), bits(&batch[1]));

    // Change it: insert a new row, delete a found one, renumber; then save and load.
    let new_row = (0..=u32::MAX)
        .find(|&r| !index.contains(r))
        .expect("a free row");
    match index.insert(new_row, u64::from(u32_at(data, 0)), &q) {
        Ok(()) => assert!(index.contains(new_row)),
        Err(AnnError::Full) => {}
        Err(other) => panic!("insert into a loaded graph: {other}"),
    }
    if let Some(&(row, _)) = hits.first() {
        index.delete(row).expect("a row search found is live");
        assert!(!index.contains(row));
    }
    let live = index.len();
    let kept: Vec<u32> = (0..RENUMBER_ROWS).collect();
    match index.renumber(&kept) {
        Ok(()) => assert_eq!(index.len(), live),
        Err(AnnError::Invalid(_)) => {} // a live row at RENUMBER_ROWS or above
        Err(other) => panic!("renumber: {other}"),
    }
    let bytes = index.to_bytes();
    let again = Hnsw::from_bytes(&bytes).expect("a graph's own bytes load");
    assert!(again.to_bytes() == bytes, "save, load, save differs");
    assert_eq!(
        bits(&again.search(&q, k, None, None).expect("a valid query")),
        bits(&index.search(&q, k, None, None).expect("a valid query"))
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= HEADER_BYTES + 4 {
        let mut sealed = data.to_vec();
        seal(&mut sealed);
        check(&sealed);
        if let Some(bytes) = resized(data) {
            check(&bytes);
        }
    }
});
