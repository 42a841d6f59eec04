//! The vector kernels against naive references: `dot` within the float32 error bound of a
//! float64 sum; `candidates` equal to sorting every score (the same float32 scores) and
//! cutting at the k-th less the margin, for any split into parts, any mask, any thread count,
//! one query at a time or batched; `quantize` and `search_int8` equal to the formulas in
//! their documentation, and int8 recall on clustered rows.

use mnemos_core::kernels::{candidates, dot, dot_f64, quantize, search_int8, Matrix};

/// SplitMix64: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

fn norms(matrix: &[f32], dim: usize) -> Vec<f32> {
    matrix
        .chunks_exact(dim)
        .map(|r| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() as f32)
        .collect()
}

fn units(rng: &mut Rng, count: usize, dim: usize) -> Vec<f32> {
    let mut q = rng.normals(count * dim);
    for row in q.chunks_exact_mut(dim) {
        let n = row
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        row.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    }
    q
}

/// Rows around `clusters` centres with spread `noise`, like embeddings of a few topics.
fn clustered(rng: &mut Rng, rows: usize, dim: usize, clusters: usize, noise: f32) -> Vec<f32> {
    let centres = rng.normals(clusters * dim);
    let mut out = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let c = rng.below(clusters);
        for d in 0..dim {
            out.push(centres[c * dim + d] + noise * rng.normal());
        }
    }
    out
}

fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// `candidates` by brute force: every selected row's score (with the same `dot`), sorted.
fn naive_candidates(
    matrix: &[f32],
    dim: usize,
    norms: &[f32],
    query: &[f32],
    mask: Option<&[u8]>,
    k: usize,
    margin: f32,
) -> Vec<u32> {
    let selected: Vec<usize> = (0..norms.len())
        .filter(|&i| mask.is_none_or(|m| m[i] != 0))
        .collect();
    if k == 0 || selected.is_empty() {
        return Vec::new();
    }
    let score = |i: usize| dot(&matrix[i * dim..][..dim], query) / norms[i];
    let mut scores: Vec<f32> = selected.iter().map(|&i| score(i)).collect();
    if selected.len() <= k {
        return selected.iter().map(|&i| i as u32).collect();
    }
    scores.sort_by(|a, b| b.total_cmp(a));
    let floor = scores[k - 1] - margin;
    selected
        .into_iter()
        .filter(|&i| score(i) >= floor)
        .map(|i| i as u32)
        .collect()
}

/// `matrix` split into parts at `cuts` (row numbers), some of them possibly empty.
fn split<'a>(matrix: &'a [f32], dim: usize, cuts: &[usize]) -> Matrix<'a, f32> {
    let mut parts = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        parts.push(&matrix[start * dim..cut * dim]);
        start = cut;
    }
    parts.push(&matrix[start * dim..]);
    Matrix::new(parts, dim).unwrap()
}

#[test]
fn dot_is_within_the_float32_bound_of_a_float64_sum() {
    let mut rng = Rng(1);
    for len in (0..70).chain([127, 128, 129, 384, 385, 1000, 4096]) {
        let (a, b) = (rng.normals(len), rng.normals(len));
        let exact = naive_dot(&a, &b);
        let magnitude: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y).abs()).sum();
        let bound = (len as f64 + 4.0) * 2f64.powi(-24) * magnitude;
        let got = f64::from(dot(&a, &b));
        assert!((got - exact).abs() <= bound, "len {len}: {got} vs {exact}");
        assert!((dot_f64(&a, &b) - exact).abs() <= 1e-12 * magnitude.max(1.0));
    }
}

#[test]
fn dot_of_small_integers_is_exact() {
    let a: Vec<f32> = (0..1000).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..1000).map(|i| (i % 5) as f32 - 2.0).collect();
    assert_eq!(f64::from(dot(&a, &b)), naive_dot(&a, &b));
    assert_eq!(dot(&[], &[]), 0.0);
    assert_eq!(dot(&[2.0], &[3.0]), 6.0);
}

#[test]
#[should_panic(expected = "different lengths")]
fn dot_of_different_lengths_panics() {
    let _ = dot(&[1.0, 2.0], &[1.0]);
}

#[test]
fn candidates_equal_the_naive_cut_for_every_mask_split_and_k() {
    let mut rng = Rng(2);
    for (rows, dim) in [(1, 1), (7, 1), (50, 3), (200, 17), (300, 64), (129, 384)] {
        let mut matrix = rng.normals(rows * dim);
        // Duplicate rows: tied scores, which must all be kept.
        for _ in 0..rows / 5 {
            let (from, to) = (rng.below(rows), rng.below(rows));
            let row = matrix[from * dim..][..dim].to_vec();
            matrix[to * dim..][..dim].copy_from_slice(&row);
        }
        let norms = norms(&matrix, dim);
        let queries = units(&mut rng, 5, dim);
        let masks: Vec<Option<Vec<u8>>> = vec![
            None,
            Some(vec![1; rows]),
            Some(vec![0; rows]),
            Some((0..rows).map(|_| u8::from(rng.below(10) == 0)).collect()),
            Some((0..rows).map(|_| 2 * u8::from(rng.below(2) == 0)).collect()),
        ];
        let cuts = [0, rows / 3, rows / 3, rows];
        let matrix_parts = split(&matrix, dim, &cuts);
        for mask in &masks {
            for k in [0, 1, 3, 10, rows, rows + 5] {
                for margin in [0.0, 1e-3, 0.1] {
                    let got = candidates(
                        &matrix_parts,
                        &norms,
                        &queries,
                        mask.as_deref(),
                        k,
                        margin,
                        1,
                    )
                    .unwrap();
                    for (q, got) in queries.chunks_exact(dim).zip(&got) {
                        let want =
                            naive_candidates(&matrix, dim, &norms, q, mask.as_deref(), k, margin);
                        assert_eq!(got, &want, "rows {rows} dim {dim} k {k} margin {margin}");
                    }
                }
            }
        }
    }
}

#[test]
fn candidates_contain_the_exact_top_k() {
    let mut rng = Rng(3);
    let (rows, dim, k) = (2000, 384, 10);
    let matrix = clustered(&mut rng, rows, dim, 20, 0.3);
    let norms = norms(&matrix, dim);
    let queries = units(&mut rng, 8, dim);
    let m = Matrix::new(vec![&matrix[..]], dim).unwrap();
    let found = candidates(&m, &norms, &queries, None, k, 1e-3, 2).unwrap();
    for (q, found) in queries.chunks_exact(dim).zip(&found) {
        let mut exact: Vec<(f64, u32)> = (0..rows)
            .map(|i| {
                let row = &matrix[i * dim..][..dim];
                (naive_dot(row, q) / naive_dot(row, row).sqrt(), i as u32)
            })
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, row) in &exact[..k] {
            assert!(found.contains(row));
        }
        assert!(found.windows(2).all(|w| w[0] < w[1]), "ascending");
    }
}

#[test]
fn candidates_do_not_depend_on_threads_parts_or_batching() {
    let mut rng = Rng(4);
    // Enough work (rows x dim x queries) for the scan to use several threads.
    let (rows, dim) = (5000, 64);
    let matrix = clustered(&mut rng, rows, dim, 30, 0.5);
    let norms = norms(&matrix, dim);
    let queries = units(&mut rng, 9, dim); // two groups of four and one left over
    let mask: Vec<u8> = (0..rows).map(|i| u8::from(i % 7 != 3)).collect();
    let whole = Matrix::new(vec![&matrix[..]], dim).unwrap();
    let reference = candidates(&whole, &norms, &queries, Some(&mask), 10, 1e-3, 1).unwrap();
    for threads in [2, 3, 8] {
        for cuts in [vec![], vec![1], vec![64, 64, 4999], vec![2500]] {
            let parts = split(&matrix, dim, &cuts);
            let got = candidates(&parts, &norms, &queries, Some(&mask), 10, 1e-3, threads);
            assert_eq!(got.unwrap(), reference, "threads {threads} cuts {cuts:?}");
        }
    }
    for (q, want) in queries.chunks_exact(dim).zip(&reference) {
        let one = candidates(&whole, &norms, q, Some(&mask), 10, 1e-3, 2).unwrap();
        assert_eq!(&one[0], want, "batched = one query at a time");
    }
}

#[test]
fn candidates_reject_shapes_that_do_not_fit() {
    let matrix = [1.0f32; 12];
    let m = Matrix::new(vec![&matrix[..]], 3).unwrap();
    let norms = [1.0f32; 4];
    let q = [1.0f32, 0.0, 0.0];
    assert!(Matrix::new(vec![&matrix[..10]], 3).is_err());
    assert!(Matrix::<f32>::new(vec![], 0).is_err());
    assert!(candidates(&m, &norms[..3], &q, None, 1, 0.0, 1).is_err());
    assert!(candidates(&m, &norms, &q[..2], None, 1, 0.0, 1).is_err());
    assert!(candidates(&m, &norms, &q, Some(&[1, 1]), 1, 0.0, 1).is_err());
    assert!(candidates(&m, &norms, &q, None, 1, -1.0, 1).is_err());
    assert!(candidates(&m, &norms, &q, None, 1, f32::NAN, 1).is_err());
    let err = candidates(&m, &norms[..3], &q, None, 1, 0.0, 1).unwrap_err();
    assert_eq!(err.to_string(), "norms has 3 values for 4 rows");
    // No queries: no results, not an error.
    assert_eq!(
        candidates(&m, &norms, &[], None, 1, 0.0, 1).unwrap().len(),
        0
    );
}

#[test]
fn quantize_follows_its_formula() {
    let mut rng = Rng(5);
    let dim = 37;
    let mut matrix = rng.normals(20 * dim);
    matrix[..dim].fill(0.0); // a zero row
    let (codes, scales) = quantize(&matrix, dim).unwrap();
    assert_eq!((codes.len(), scales.len()), (matrix.len(), 20));
    assert_eq!(scales[0], 0.0);
    assert!(codes[..dim].iter().all(|&c| c == 0));
    for (i, row) in matrix.chunks_exact(dim).enumerate().skip(1) {
        let peak = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert_eq!(scales[i], peak / 127.0);
        for (d, x) in row.iter().enumerate() {
            let code = codes[i * dim + d];
            assert_eq!(code, (x / scales[i]).round_ties_even() as i8);
            assert!((f32::from(code) * scales[i] - x).abs() <= scales[i] * 0.5 + 1e-6);
        }
        assert!(codes[i * dim..][..dim].iter().any(|c| c.abs() == 127));
    }
    // Halves round to even, as numpy.rint does.
    let (codes, _) = quantize(&[127.0, 0.5, 1.5, -2.5], 4).unwrap();
    assert_eq!(codes, vec![127, 0, 2, -2]);
    assert!(quantize(&matrix[..5], 3).is_err());
    assert!(quantize(&matrix, 0).is_err());
}

/// `search_int8` by brute force, from its documentation.
#[allow(clippy::too_many_arguments)]
fn naive_search_int8(
    codes: &[i8],
    scales: &[f32],
    matrix: &[f32],
    dim: usize,
    norms: &[f32],
    query: &[f32],
    mask: Option<&[u8]>,
    k: usize,
    rescore: usize,
) -> Vec<(u32, f64)> {
    let (qcodes, qscale) = quantize(query, dim).unwrap();
    let mut approx: Vec<(f32, u32)> = (0..norms.len())
        .filter(|&i| mask.is_none_or(|m| m[i] != 0))
        .map(|i| {
            let idot: i32 = codes[i * dim..][..dim]
                .iter()
                .zip(&qcodes)
                .map(|(a, b)| i32::from(*a) * i32::from(*b))
                .sum();
            (idot as f32 * scales[i] * qscale[0] / norms[i], i as u32)
        })
        .collect();
    approx.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    approx.truncate(rescore.max(k));
    let mut exact: Vec<(u32, f64)> = approx
        .iter()
        .map(|&(_, i)| {
            let row = &matrix[i as usize * dim..][..dim];
            (i, dot_f64(row, query) / f64::from(norms[i as usize]))
        })
        .collect();
    exact.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    exact.truncate(k);
    exact
}

#[test]
fn search_int8_equals_the_naive_search_and_does_not_depend_on_threads() {
    let mut rng = Rng(6);
    for (rows, dim) in [(1, 1), (40, 5), (3000, 96)] {
        let mut matrix = clustered(&mut rng, rows, dim, 10, 0.4);
        for _ in 0..rows / 10 {
            let (from, to) = (rng.below(rows), rng.below(rows));
            let row = matrix[from * dim..][..dim].to_vec();
            matrix[to * dim..][..dim].copy_from_slice(&row);
        }
        let norms = norms(&matrix, dim);
        let (codes, scales) = quantize(&matrix, dim).unwrap();
        let queries = units(&mut rng, 6, dim);
        let code_matrix = Matrix::new(vec![&codes[..]], dim).unwrap();
        let parts = split(&matrix, dim, &[rows / 2]);
        let sparse: Vec<u8> = (0..rows).map(|i| u8::from(i % 3 == 0)).collect();
        for mask in [None, Some(&sparse[..]), Some(&vec![0; rows][..])] {
            for (k, rescore) in [(0, 10), (1, 1), (5, 20), (10, 3), (rows + 1, 0)] {
                let run = |threads| {
                    search_int8(
                        &code_matrix,
                        &scales,
                        &parts,
                        &norms,
                        &queries,
                        mask,
                        k,
                        rescore,
                        threads,
                    )
                    .unwrap()
                };
                let got = run(1);
                assert_eq!(run(4), got);
                for (q, got) in queries.chunks_exact(dim).zip(&got) {
                    let want = naive_search_int8(
                        &codes, &scales, &matrix, dim, &norms, q, mask, k, rescore,
                    );
                    assert_eq!(got, &want, "rows {rows} dim {dim} k {k} rescore {rescore}");
                }
            }
        }
    }
}

#[test]
fn search_int8_recall_on_clustered_rows() {
    let mut rng = Rng(7);
    let (rows, dim, k) = (20_000, 384, 10);
    let matrix = clustered(&mut rng, rows, dim, 50, 0.35);
    let norms = norms(&matrix, dim);
    let (codes, scales) = quantize(&matrix, dim).unwrap();
    // Queries near the data, as real questions are.
    let mut queries = clustered(&mut rng, 20, dim, 50, 0.35);
    for q in queries.chunks_exact_mut(dim) {
        let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        q.iter_mut().for_each(|x| *x /= n);
    }
    let code_matrix = Matrix::new(vec![&codes[..]], dim).unwrap();
    let m = Matrix::new(vec![&matrix[..]], dim).unwrap();
    let found = search_int8(
        &code_matrix,
        &scales,
        &m,
        &norms,
        &queries,
        None,
        k,
        4 * k,
        2,
    )
    .unwrap();
    let mut hits = 0;
    for (q, found) in queries.chunks_exact(dim).zip(&found) {
        let mut exact: Vec<(f64, u32)> = (0..rows)
            .map(|i| {
                (
                    dot_f64(&matrix[i * dim..][..dim], q) / f64::from(norms[i]),
                    i as u32,
                )
            })
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        hits += exact[..k]
            .iter()
            .filter(|(_, r)| found.iter().any(|(f, _)| f == r))
            .count();
    }
    let recall = hits as f64 / (k * 20) as f64;
    assert!(recall >= 0.95, "recall@{k} {recall}");
}

#[test]
fn search_int8_rejects_codes_of_another_shape() {
    let matrix = vec![1.0f32; 12];
    let (codes, scales) = quantize(&matrix, 3).unwrap();
    let m = Matrix::new(vec![&matrix[..]], 3).unwrap();
    let wrong = Matrix::new(vec![&codes[..6]], 3).unwrap();
    let norms = vec![3f32.sqrt(); 4];
    let q = [1.0f32, 0.0, 0.0];
    assert!(search_int8(&wrong, &scales, &m, &norms, &q, None, 1, 4, 1).is_err());
    let codes = Matrix::new(vec![&codes[..]], 3).unwrap();
    assert!(search_int8(&codes, &scales[..3], &m, &norms, &q, None, 1, 4, 1).is_err());
    let found = search_int8(&codes, &scales, &m, &norms, &q, None, 2, 4, 1).unwrap();
    assert_eq!(found[0].len(), 2);
    assert_eq!(found[0][0].0, 0, "ties go to the lower row");
}

/// Regression (fuzz/fuzz_targets/kernels.rs, input kept in tests/data/fuzz-rust/kernels/):
/// a `k` or `rescore` far above the row count sized the result heaps by it, a capacity
/// overflow panic (or, a little lower, an allocation failure that aborts). It asks for every
/// row: the same answer as `k` = the row count.
#[test]
fn candidates_and_search_int8_take_any_k() {
    let matrix = [1.0f32, 0.0, 0.0, 1.0, 0.5, 0.5];
    let m = Matrix::new(vec![&matrix[..]], 2).unwrap();
    let norms = norms(&matrix, 2);
    let (codes, scales) = quantize(&matrix, 2).unwrap();
    let codes = Matrix::new(vec![&codes[..]], 2).unwrap();
    let q = [1.0f32, 0.0];
    for k in [usize::MAX, usize::MAX / 2, 1 << 40] {
        let found = candidates(&m, &norms, &q, None, k, 0.0, 1).unwrap();
        assert_eq!(found, candidates(&m, &norms, &q, None, 3, 0.0, 1).unwrap());
        assert_eq!(found[0], [0, 1, 2]);
        let hits = search_int8(&codes, &scales, &m, &norms, &q, None, k, k, 1).unwrap();
        assert_eq!(
            hits,
            search_int8(&codes, &scales, &m, &norms, &q, None, 3, 3, 1).unwrap()
        );
        assert_eq!(hits[0].len(), 3);
        let hits = search_int8(&codes, &scales, &m, &norms, &q, None, 1, k, 1).unwrap();
        assert_eq!(hits[0].len(), 1);
    }
}
