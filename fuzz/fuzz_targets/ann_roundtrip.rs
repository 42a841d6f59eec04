//! Build, save, load (`ann::Hnsw`): a graph built by operations taken from the input, checked
//! against a model of its live rows, then saved with `to_bytes` and loaded with `from_bytes`.
//!
//! - Each insert, batch insert, delete and renumber succeeds exactly when the model says it
//!   may (a free row, a finite non-zero vector; a live row; kept rows ascending and holding
//!   every live row), and one that fails changes nothing (the same bytes).
//! - A search returns `min(k, live)` distinct live rows.
//! - The saved bytes load, save again to the same bytes, and answer searches the same.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mnemos_core::ann::{AnnError, Hnsw, Params};

const OPS_MAX: usize = 64;
const ROWS: u32 = 24;

/// A float: mostly small integers (distinct directions), sometimes any bit pattern (NaN,
/// infinities, subnormals, zero).
fn float(u: &mut Unstructured<'_>) -> Result<f32> {
    Ok(if u.ratio(1, 8)? {
        f32::from_bits(u.arbitrary()?)
    } else {
        f32::from(u.int_in_range(-4i8..=4)?)
    })
}

fn vector(u: &mut Unstructured<'_>, dim: usize) -> Result<Vec<f32>> {
    (0..dim).map(|_| float(u)).collect()
}

fn usable(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0)
}

fn check_search(index: &Hnsw, live: &BTreeSet<u32>, q: &[f32], k: usize) -> Vec<(u32, f32)> {
    match index.search(q, k, None, None) {
        Ok(hits) => {
            assert!(usable(q));
            assert_eq!(hits.len(), k.min(live.len()));
            let rows: BTreeSet<u32> = hits.iter().map(|h| h.0).collect();
            assert_eq!(rows.len(), hits.len(), "a row twice");
            assert!(rows.is_subset(live), "a row that is not live");
            hits
        }
        Err(AnnError::NotFinite { .. } | AnnError::Zero) => {
            assert!(!usable(q));
            Vec::new()
        }
        Err(other) => panic!("search: {other}"),
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let dim = u.int_in_range(1..=8)?;
    let params = Params {
        m: u.int_in_range(2..=6)?,
        ef_construction: u.int_in_range(1..=32)?,
        ef_search: u.int_in_range(1..=32)?,
    };
    let mut index = Hnsw::new(dim, params).expect("parameters in range");
    let mut live = BTreeSet::new();
    for _ in 0..OPS_MAX {
        if u.is_empty() {
            break;
        }
        let before = index.to_bytes();
        let ok = match u.int_in_range(0..=4u8)? {
            0 => {
                let row = u.int_in_range(0..=ROWS)?;
                let v = vector(u, dim)?;
                let result = index.insert(row, u.arbitrary()?, &v);
                let ok = result.is_ok();
                assert_eq!(ok, !live.contains(&row) && usable(&v), "{result:?}");
                if ok {
                    live.insert(row);
                }
                ok
            }
            1 => {
                let count = u.int_in_range(1..=4)?;
                let mut rows = Vec::new();
                let mut keys = Vec::new();
                let mut vectors = Vec::new();
                for _ in 0..count {
                    rows.push(u.int_in_range(0..=ROWS)?);
                    keys.push(u.arbitrary()?);
                    vectors.extend(vector(u, dim)?);
                }
                let result = index.insert_batch(&rows, &keys, &vectors);
                let distinct = rows.iter().collect::<BTreeSet<_>>().len() == rows.len();
                let ok = result.is_ok();
                let may = distinct
                    && rows.iter().all(|r| !live.contains(r))
                    && vectors.chunks(dim).all(usable);
                assert_eq!(ok, may, "{result:?}");
                if ok {
                    live.extend(rows);
                }
                ok
            }
            2 => {
                let row = u.int_in_range(0..=ROWS)?;
                let ok = index.delete(row).is_ok();
                assert_eq!(ok, live.remove(&row));
                ok
            }
            3 => {
                let mut kept: Vec<u32> = live.iter().copied().collect();
                for _ in 0..u.int_in_range(0..=3)? {
                    kept.push(u.int_in_range(0..=ROWS + 4)?);
                }
                if u.ratio(3, 4)? {
                    kept.sort_unstable();
                    kept.dedup();
                }
                if u.ratio(1, 8)? && !kept.is_empty() {
                    kept.remove(u.choose_index(kept.len())?);
                }
                let ascending = kept.windows(2).all(|w| w[0] < w[1]);
                let ok = index.renumber(&kept).is_ok();
                assert_eq!(ok, ascending && live.iter().all(|r| kept.contains(r)));
                if ok {
                    live = live
                        .iter()
                        .map(|r| kept.binary_search(r).expect("kept") as u32)
                        .collect();
                }
                ok
            }
            _ => {
                let q = vector(u, dim)?;
                let k = u.int_in_range(0..=ROWS as usize + 2)?;
                check_search(&index, &live, &q, k);
                false
            }
        };
        if !ok {
            assert!(
                index.to_bytes() == before,
                "a failed operation changed the graph"
            );
        }
        assert_eq!(index.len(), live.len());
        assert!(live.iter().all(|&r| index.contains(r)));
    }

    let bytes = index.to_bytes();
    assert_eq!(bytes.len(), index.serialized_len());
    let loaded = Hnsw::from_bytes(&bytes).expect("a graph's own bytes load");
    assert!(loaded.to_bytes() == bytes, "save, load, save differs");
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.deleted(), index.deleted());
    assert_eq!(loaded.unreachable(), index.unreachable());
    let q: Vec<f32> = (0..dim).map(|i| (i + 1) as f32).collect();
    let k = ROWS as usize;
    let bits = |hits: Vec<(u32, f32)>| -> Vec<(u32, u32)> {
        hits.iter().map(|&(r, s)| (r, s.to_bits())).collect()
    };
    assert_eq!(
        bits(check_search(&loaded, &live, &q, k)),
        bits(check_search(&index, &live, &q, k))
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
