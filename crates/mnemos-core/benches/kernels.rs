//! One benchmark per kernel (STYLE.md, principle 11), on 100k x 384 clustered float32 rows:
//! `dot`, `candidates` for one query and for a batch of 64, `quantize` and `search_int8`.
//!
//! Plain `std::time`, no benchmark framework: each case runs a few times and prints the best
//! and the median time, and the rate at which it reads the matrix. The cases are ignored tests
//! so that `cargo test` only compiles them; run them in release mode, one at a time:
//!
//! ```text
//! cargo test --release -p mnemos-core --bench kernels -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `MNEMOS_BENCH_THREADS` sets the threads (default: all the machine has).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mnemos_core::kernels::{candidates, dot, quantize, search_int8, Matrix};

const ROWS: usize = 100_000;
const DIM: usize = 384;
const CLUSTERS: usize = 100;
const BATCH: usize = 64;
const K: usize = 10;
const MARGIN: f32 = 1e-3;
const RUNS: usize = 15;

/// SplitMix64: a small deterministic generator, so the benchmark needs no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1): enough for clusters; normality does not matter for speed.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Rows around `CLUSTERS` centres, like sentence embeddings of a few topics.
fn clustered(rng: &mut Rng, rows: usize) -> Vec<f32> {
    let centres: Vec<f32> = (0..CLUSTERS * DIM).map(|_| rng.next_f32()).collect();
    let mut out = Vec::with_capacity(rows * DIM);
    for _ in 0..rows {
        let c = (rng.next_u64() % CLUSTERS as u64) as usize;
        for d in 0..DIM {
            out.push(centres[c * DIM + d] + 0.5 * rng.next_f32());
        }
    }
    out
}

fn norms(matrix: &[f32]) -> Vec<f32> {
    matrix
        .chunks_exact(DIM)
        .map(|r| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() as f32)
        .collect()
}

fn units(rng: &mut Rng, count: usize) -> Vec<f32> {
    let mut q = clustered(rng, count);
    for row in q.chunks_exact_mut(DIM) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= n);
    }
    q
}

fn threads() -> usize {
    std::env::var("MNEMOS_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `f` `RUNS` times and prints the best and median time and the read rate.
fn report(name: &str, bytes: usize, mut f: impl FnMut()) {
    f(); // warm up: page in the matrix, start the caches
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let (best, median) = (times[0], times[RUNS / 2]);
    let gbps = bytes as f64 / best.as_secs_f64() / 1e9;
    println!(
        "{name:<44} best {:>8.3} ms  median {:>8.3} ms  {gbps:>6.1} GB/s",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
}

struct Data {
    matrix: Vec<f32>,
    norms: Vec<f32>,
    queries: Vec<f32>,
}

fn data() -> Data {
    let mut rng = Rng(7);
    let matrix = clustered(&mut rng, ROWS);
    let norms = norms(&matrix);
    let queries = units(&mut rng, BATCH);
    Data {
        matrix,
        norms,
        queries,
    }
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored"]
fn bench_dot() {
    let d = data();
    let q = &d.queries[..DIM];
    let mut out = vec![0.0f32; ROWS];
    report(
        "dot: every row with one query (1 thread)",
        ROWS * DIM * 4,
        || {
            for (o, row) in out.iter_mut().zip(d.matrix.chunks_exact(DIM)) {
                *o = dot(black_box(row), q);
            }
            black_box(&out);
        },
    );
    // In cache: the arithmetic alone.
    let small = &d.matrix[..1000 * DIM];
    report(
        "dot: 1000 rows in cache, x100 (1 thread)",
        100 * 1000 * DIM * 4,
        || {
            for _ in 0..100 {
                for (o, row) in out.iter_mut().zip(small.chunks_exact(DIM)) {
                    *o = dot(black_box(row), q);
                }
            }
            black_box(&out);
        },
    );
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored"]
fn bench_candidates_single() {
    let d = data();
    let matrix = Matrix::new(vec![&d.matrix[..]], DIM).unwrap();
    let q = &d.queries[..DIM];
    for t in [1, threads()] {
        report(
            &format!("candidates: 1 query, {t} thread(s)"),
            ROWS * DIM * 4,
            || {
                black_box(candidates(&matrix, &d.norms, q, None, K, MARGIN, t).unwrap());
            },
        );
    }
    let mask: Vec<u8> = (0..ROWS).map(|i| u8::from(i % 10 == 0)).collect();
    report(
        &format!("candidates: 1 query, 10% mask, {} thread(s)", threads()),
        ROWS * DIM * 4 / 10,
        || {
            black_box(candidates(&matrix, &d.norms, q, Some(&mask), K, MARGIN, threads()).unwrap());
        },
    );
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored"]
fn bench_candidates_batch() {
    let d = data();
    let matrix = Matrix::new(vec![&d.matrix[..]], DIM).unwrap();
    for t in [1, threads()] {
        report(
            &format!("candidates: {BATCH} queries, {t} thread(s)"),
            ROWS * DIM * 4,
            || {
                black_box(candidates(&matrix, &d.norms, &d.queries, None, K, MARGIN, t).unwrap());
            },
        );
    }
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored"]
fn bench_int8() {
    let d = data();
    report("quantize: all rows (1 thread)", ROWS * DIM * 4, || {
        black_box(quantize(&d.matrix, DIM).unwrap());
    });
    let (codes, scales) = quantize(&d.matrix, DIM).unwrap();
    let matrix = Matrix::new(vec![&d.matrix[..]], DIM).unwrap();
    let code_matrix = Matrix::new(vec![&codes[..]], DIM).unwrap();
    let q = &d.queries[..DIM];
    let t = threads();
    for (name, queries) in [("1 query", q), ("64 queries", &d.queries[..])] {
        report(
            &format!("search_int8: {name}, rescore 40, {t} thread(s)"),
            ROWS * DIM,
            || {
                black_box(
                    search_int8(
                        &code_matrix,
                        &scales,
                        &matrix,
                        &d.norms,
                        queries,
                        None,
                        K,
                        4 * K,
                        t,
                    )
                    .unwrap(),
                );
            },
        );
    }
    // Recall@10 against the exact float32 ranking, on these clustered rows.
    let found = search_int8(
        &code_matrix,
        &scales,
        &matrix,
        &d.norms,
        &d.queries,
        None,
        K,
        4 * K,
        t,
    )
    .unwrap();
    let mut hits = 0;
    for (q, found) in d.queries.chunks_exact(DIM).zip(&found) {
        let mut exact: Vec<(f32, usize)> = d
            .matrix
            .chunks_exact(DIM)
            .enumerate()
            .map(|(i, r)| (dot(r, q) / d.norms[i], i))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let truth: Vec<usize> = exact[..K].iter().map(|e| e.1).collect();
        hits += found
            .iter()
            .filter(|(r, _)| truth.contains(&(*r as usize)))
            .count();
    }
    println!(
        "search_int8 recall@{K} (rescore {}): {:.4}; bytes per row {} (int8 + scale) vs {} (float32)",
        4 * K,
        hits as f64 / (K * BATCH) as f64,
        DIM + 4,
        DIM * 4
    );
}
