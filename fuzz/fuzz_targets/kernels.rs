//! The vector kernels on any float32 values and shapes: `kernels::quantize` (the int8 codes),
//! `kernels::search_int8` and `kernels::candidates`. Their float32 rows come straight from a
//! snapshot's VECTORS and NORMS sections, so any bit pattern can reach them (NaN, infinities,
//! zero norms), and their codes, mask, `k` and `rescore` from callers.
//!
//! - Arguments whose shapes do not fit together give a `ShapeError`; nothing panics.
//! - `quantize` gives one code per value, each in -127 ..= 127, and one scale per row.
//! - Each query's `candidates` are distinct rows the mask allows, ascending; with `k` at
//!   least the rows the mask allows, all of those that do not score NaN.
//! - Each query's `search_int8` hits are at most `min(k, allowed rows)` distinct allowed
//!   rows, best first.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mnemos_core::kernels::{self, Matrix, INT8_CODE_MAX};

const DIM_MAX: usize = 40;
const ROWS_MAX: usize = 80;
const QUERIES_MAX: usize = 5;

/// A float: mostly small values, sometimes a special one or any bit pattern.
fn float(u: &mut Unstructured<'_>) -> Result<f32> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => f32::from_bits(u.arbitrary()?),
        1 => *u.choose(&[
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
        ])?,
        _ => f32::from(u.int_in_range(-100i8..=100)?) / 16.0,
    })
}

fn floats(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<f32>> {
    (0..n).map(|_| float(u)).collect()
}

/// A count: mostly near `typical`, sometimes any `usize` (a caller's mistake must not panic).
fn count(u: &mut Unstructured<'_>, typical: usize) -> Result<usize> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary::<u64>()? as usize
    } else {
        u.int_in_range(0..=typical + 2)?
    })
}

/// `n` with, now and then, one more or one less: a length that does not fit.
fn maybe_wrong(u: &mut Unstructured<'_>, n: usize) -> Result<usize> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => n + 1,
        1 => n.saturating_sub(1),
        _ => n,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let dim = u.int_in_range(1..=DIM_MAX)?;
    let rows = u.int_in_range(0..=ROWS_MAX)?;
    let values = floats(u, rows * dim)?;
    // The matrix in up to three parts, split at row boundaries.
    let cut1 = u.int_in_range(0..=rows)?;
    let cut2 = u.int_in_range(cut1..=rows)?;
    let parts = vec![
        &values[..cut1 * dim],
        &values[cut1 * dim..cut2 * dim],
        &values[cut2 * dim..],
    ];
    let matrix = Matrix::new(parts, dim).expect("whole rows");
    let norms_len = maybe_wrong(u, rows)?;
    let norms = floats(u, norms_len)?;
    let queries_len = u.int_in_range(0..=QUERIES_MAX)? * dim + maybe_wrong(u, 0)?;
    let queries = floats(u, queries_len)?;
    let mask: Option<Vec<u8>> = if u.arbitrary()? {
        let n = maybe_wrong(u, rows)?;
        Some(
            (0..n)
                .map(|_| u.int_in_range(0..=1))
                .collect::<Result<_>>()?,
        )
    } else {
        None
    };
    let k = count(u, rows)?;
    let rescore = count(u, rows)?;
    let margin = float(u)?;
    let threads = u.int_in_range(0..=2)?;
    let shapes_fit = norms.len() == rows
        && queries.len() % dim == 0
        && mask.as_ref().is_none_or(|m| m.len() == rows);
    let nq = queries.len() / dim;
    let allowed = |row: u32| {
        mask.as_ref()
            .is_none_or(|m| m.get(row as usize).is_some_and(|&b| b != 0))
    };
    let allowed_rows = (0..rows as u32).filter(|&r| allowed(r)).count();

    // quantize: codes in range, one scale per row.
    let (codes, scales) = kernels::quantize(&values, dim).expect("whole rows");
    assert_eq!(codes.len(), values.len());
    assert_eq!(scales.len(), rows);
    assert!(codes.iter().all(|&c| f32::from(c).abs() <= INT8_CODE_MAX));

    // candidates.
    let found = kernels::candidates(
        &matrix,
        &norms,
        &queries,
        mask.as_deref(),
        k,
        margin,
        threads,
    );
    let margin_ok = margin.is_finite() && margin >= 0.0;
    match found {
        Ok(found) => {
            assert!(shapes_fit && margin_ok);
            assert_eq!(found.len(), nq);
            for (q, rows_found) in found.iter().enumerate() {
                assert!(rows_found.windows(2).all(|w| w[0] < w[1]), "not ascending");
                assert!(rows_found
                    .iter()
                    .all(|&r| (r as usize) < rows && allowed(r)));
                if k >= allowed_rows && k > 0 {
                    let query = &queries[q * dim..][..dim];
                    let scored = (0..rows as u32)
                        .filter(|&r| allowed(r))
                        .filter(|&r| {
                            let score =
                                kernels::dot(matrix.row(r as usize), query) / norms[r as usize];
                            !score.is_nan()
                        })
                        .count();
                    assert_eq!(rows_found.len(), scored, "k covers every row");
                }
            }
        }
        Err(_) => assert!(!shapes_fit || !margin_ok),
    }

    // search_int8, over the codes of the matrix or (now and then) any codes of its shape.
    let raw_codes: Vec<i8>;
    let codes: &[i8] = if u.ratio(1, 4)? {
        raw_codes = (0..codes.len())
            .map(|_| u.arbitrary())
            .collect::<Result<_>>()?;
        &raw_codes
    } else {
        &codes
    };
    let codes = Matrix::new(vec![codes], dim).expect("whole rows");
    let scales = &scales[..maybe_wrong(u, rows)?.min(rows)];
    let hits = kernels::search_int8(
        &codes,
        scales,
        &matrix,
        &norms,
        &queries,
        mask.as_deref(),
        k,
        rescore,
        threads,
    );
    match hits {
        Ok(hits) => {
            assert!(shapes_fit && scales.len() == rows);
            assert_eq!(hits.len(), nq);
            for h in &hits {
                // Fewer when some rows' int8 scores are NaN: those are never candidates.
                assert!(h.len() <= k.min(allowed_rows));
                let distinct: BTreeSet<u32> = h.iter().map(|x| x.0).collect();
                assert_eq!(distinct.len(), h.len(), "a row twice");
                assert!(distinct.iter().all(|&r| (r as usize) < rows && allowed(r)));
                assert!(
                    h.windows(2).all(|w| w[0].1.total_cmp(&w[1].1).is_ge()),
                    "not best first"
                );
            }
        }
        Err(_) => assert!(!shapes_fit || scales.len() != rows),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
