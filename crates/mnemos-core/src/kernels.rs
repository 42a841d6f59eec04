//! Vector kernels over float32 rows: inner products, the candidate scan of exact search, and
//! int8 scalar quantisation with exact rescoring.
//!
//! Python reference: `mnemos/index/kernels.py` (`candidates_py`, `quantize_py`,
//! `search_int8_py`), which `tests/test_kernels.py` compares against these functions.
//!
//! The loops are plain scalar code written so that the compiler vectorises them (STYLE.md,
//! principle 11): `LANES` independent accumulators per dot product, summed in a fixed order at
//! the end, so a score depends only on the two vectors, never on the thread, the batch or the
//! position of the row. `benches/kernels.rs` measures each kernel.
//!
//! A matrix is a [`Matrix`]: consecutive parts, rows numbered across them (the vector index
//! keeps the rows a snapshot held apart from the rows added since). Scans go through it in
//! blocks of `BLOCK_ROWS` rows, apply the row mask inside the scan (a masked row is never
//! read or scored), and split the rows between threads when there is enough work.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Range;

/// Independent accumulators per dot product: two AVX registers (four SSE ones), enough to
/// keep the additions busy when reading from memory; a group of four queries has eight.
const LANES: usize = 16;
/// Queries scored together: each row is loaded once for all of them.
const QUERY_GROUP: usize = 4;
/// Rows per block: a block is read from memory once and stays in cache (L2) while every
/// query group is scored against it (64 rows of 384 float32 are 96 KiB).
const BLOCK_ROWS: usize = 64;
/// Multiply-adds that make a thread worth starting: a tenth of a millisecond of work or more,
/// several times what starting a thread costs.
const WORK_PER_THREAD_MIN: usize = 1 << 20;
/// The largest row count: row numbers are returned as u32.
pub const ROWS_MAX: usize = u32::MAX as usize;
/// The largest dimension the int8 kernel takes: `dim * 128 * 128` must fit in an i32.
pub const INT8_DIM_MAX: usize = 1 << 17;
/// The largest int8 code magnitude `quantize` produces (symmetric: -127..=127).
pub const INT8_CODE_MAX: f32 = 127.0;

/// Arguments whose lengths or values do not fit together. The message says which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError(message()))
    }
}

/// Which build of the kernels this CPU runs.
///
/// The crate is compiled for baseline x86-64 (SSE2), where the plain loops below vectorise
/// four floats wide and miss the instructions int8 codes want (sign extension, 32-bit
/// multiplies, rounding). Each kernel is therefore also compiled with AVX2 and with AVX-512
/// enabled, and the scans pick the widest the CPU has. The builds do the same operations in
/// the same order (the compiler never fuses a multiply and an add on its own), so they
/// return the same bits; `tests::builds_and_groups_agree_to_the_bit` checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The builds this CPU can run, widest last.
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut isas = vec![Isa::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                isas.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                isas.push(Isa::Avx512);
            }
        }
        isas
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

/// A `rows` x `dim` matrix stored row-major in consecutive parts, each a whole number of rows.
/// Row `i` of the matrix is row `i - (rows of the parts before)` of its part.
#[derive(Clone, Debug)]
pub struct Matrix<'a, T> {
    parts: Vec<&'a [T]>,
    dim: usize,
    rows: usize,
}

impl<'a, T> Matrix<'a, T> {
    /// The matrix made of `parts`, each `dim` values per row.
    pub fn new(parts: Vec<&'a [T]>, dim: usize) -> Result<Self, ShapeError> {
        check(dim >= 1, || "dim must be at least 1".into())?;
        for (i, part) in parts.iter().enumerate() {
            check(part.len().is_multiple_of(dim), || {
                format!(
                    "part {i} has {} values, not a whole number of rows of {dim}",
                    part.len()
                )
            })?;
        }
        let rows = parts.iter().map(|p| p.len() / dim).sum();
        check(rows <= ROWS_MAX, || {
            format!("{rows} rows; the limit is {ROWS_MAX}")
        })?;
        Ok(Matrix { parts, dim, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `index` (panics when out of range).
    pub fn row(&self, index: usize) -> &'a [T] {
        let mut first = 0;
        for part in &self.parts {
            let rows = part.len() / self.dim;
            if index < first + rows {
                return &part[(index - first) * self.dim..][..self.dim];
            }
            first += rows;
        }
        panic!("row {index} of a matrix of {} rows", self.rows);
    }

    /// The rows in `range` as contiguous pieces: (number of the first row, its values).
    fn pieces(&self, range: Range<usize>) -> impl Iterator<Item = (usize, &'a [T])> + '_ {
        let mut first = 0;
        self.parts.iter().filter_map(move |part| {
            let rows = part.len() / self.dim;
            let (lo, hi) = (range.start.max(first), range.end.min(first + rows));
            let piece = (lo < hi).then(|| {
                let values = &part[(lo - first) * self.dim..(hi - first) * self.dim];
                (lo, values)
            });
            first += rows;
            piece
        })
    }
}

/// Sums the accumulators pairwise: lane `i` with lane `i + 8`, then `i + 4`, and so on.
#[inline(always)]
fn reduce<T: Copy + std::ops::AddAssign>(mut acc: [T; LANES]) -> T {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            let upper = acc[i + width];
            acc[i] += upper;
        }
    }
    acc[0]
}

/// The inner products of `row` with each of `queries`, reading `row` once. Query `j`'s result
/// is bit-for-bit the same as `dot(row, queries[j])`: each query has its own accumulators and
/// the same order of operations.
#[inline(always)]
fn dots_f32_plain<const Q: usize>(row: &[f32], queries: [&[f32]; Q]) -> [f32; Q] {
    let (body, tail) = row.as_chunks::<LANES>();
    let n = body.len();
    // Every slice cut to exactly `n` chunks up front, so the loop has no bounds checks (with
    // them, the compiler does not vectorise it).
    let queries = queries.map(|q| q[..row.len()].split_at(n * LANES));
    let bodies = queries.map(|(b, _)| &b.as_chunks::<LANES>().0[..n]);
    let mut acc = [[0.0f32; LANES]; Q];
    for c in 0..n {
        let r = &body[c];
        for j in 0..Q {
            let q = &bodies[j][c];
            for i in 0..LANES {
                acc[j][i] += r[i] * q[i];
            }
        }
    }
    finish_f32(&acc, tail, queries.map(|(_, t)| t))
}

/// The end of `dots_f32_plain`: the remainder and the sums of the accumulators. Out of line
/// on purpose: inlined, the compiler vectorises the sums across the queries instead of the
/// loop across the lanes, and the loop runs one float at a time (seen in the assembly, with
/// four queries).
#[inline(never)]
fn finish_f32<const Q: usize>(
    acc: &[[f32; LANES]; Q],
    tail: &[f32],
    tails: [&[f32]; Q],
) -> [f32; Q] {
    let mut out = [0.0f32; Q];
    for ((out, acc), q) in out.iter_mut().zip(acc).zip(tails) {
        let mut rest = 0.0f32;
        for (x, y) in tail.iter().zip(q.iter()) {
            rest += x * y;
        }
        *out = reduce(*acc) + rest;
    }
    out
}

/// `dots_f32_plain` in the build for `isa`.
#[inline(always)]
fn dots_f32<const Q: usize>(isa: Isa, row: &[f32], queries: [&[f32]; Q]) -> [f32; Q] {
    match isa {
        Isa::Baseline => dots_f32_plain(row, queries),
        // SAFETY (both): `Isa` only names an instruction set the CPU was found to have.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { dots_f32_avx2(row, queries) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { dots_f32_avx512(row, queries) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn dots_f32_avx512<const Q: usize>(row: &[f32], queries: [&[f32]; Q]) -> [f32; Q] {
    dots_f32_plain(row, queries)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_f32_avx2<const Q: usize>(row: &[f32], queries: [&[f32]; Q]) -> [f32; Q] {
    dots_f32_plain(row, queries)
}

/// `dots_i8_plain` in the build for `isa`.
#[inline(always)]
fn dots_i8<const Q: usize>(isa: Isa, row: &[i8], queries: [&[i8]; Q]) -> [i32; Q] {
    match isa {
        Isa::Baseline => dots_i8_plain(row, queries),
        // SAFETY (both): `Isa` only names an instruction set the CPU was found to have.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { dots_i8_avx2(row, queries) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { dots_i8_avx512(row, queries) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn dots_i8_avx512<const Q: usize>(row: &[i8], queries: [&[i8]; Q]) -> [i32; Q] {
    dots_i8_plain(row, queries)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_i8_avx2<const Q: usize>(row: &[i8], queries: [&[i8]; Q]) -> [i32; Q] {
    dots_i8_plain(row, queries)
}

/// As `dots_f32_plain` for int8 codes; exact (integer) as long as `row.len() <= INT8_DIM_MAX`.
#[inline(always)]
fn dots_i8_plain<const Q: usize>(row: &[i8], queries: [&[i8]; Q]) -> [i32; Q] {
    let (body, tail) = row.as_chunks::<LANES>();
    let n = body.len();
    let queries = queries.map(|q| q[..row.len()].split_at(n * LANES));
    let bodies = queries.map(|(b, _)| &b.as_chunks::<LANES>().0[..n]);
    let mut acc = [[0i32; LANES]; Q];
    for c in 0..n {
        let r = &body[c];
        for j in 0..Q {
            let q = &bodies[j][c];
            for i in 0..LANES {
                acc[j][i] += i32::from(r[i]) * i32::from(q[i]);
            }
        }
    }
    finish_i8(&acc, tail, queries.map(|(_, t)| t))
}

/// The end of `dots_i8_plain`, kept out of line like `finish_f32`.
#[inline(never)]
fn finish_i8<const Q: usize>(acc: &[[i32; LANES]; Q], tail: &[i8], tails: [&[i8]; Q]) -> [i32; Q] {
    let mut out = [0i32; Q];
    for ((out, acc), q) in out.iter_mut().zip(acc).zip(tails) {
        let mut rest = 0i32;
        for (x, y) in tail.iter().zip(q) {
            rest += i32::from(*x) * i32::from(*y);
        }
        *out = reduce(*acc) + rest;
    }
    out
}

/// Inner product of two float32 vectors of the same length, accumulated in float32.
///
/// Rounding: `LANES` partial sums of `len / LANES` products each, added pairwise, then the
/// remainder, so the error is at most about `(len / LANES + 20) * 2^-24 * sum(|a_i * b_i|)`,
/// inside the `len * 2^-24` bound that holds for every summation order (see `candidates`).
///
/// Panics if the lengths differ.
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    dots_f32::<1>(Isa::detect(), a, [b])[0]
}

/// Inner product of two float32 vectors accumulated in float64: the products are exact, so
/// the result is within a few float64 roundings of the true value. Panics if the lengths
/// differ.
#[must_use]
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0f64;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += f64::from(*x) * f64::from(*y);
    }
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    reduce(acc) + tail
}

/// A scored row. `Ord` puts the better first: higher score, then lower row; NaN never gets
/// here (`Best::offer` drops it).
#[derive(Clone, Copy, Debug)]
struct Entry {
    score: f32,
    row: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // `partial_cmp`, not `total_cmp`: -0.0 and 0.0 are the same score, as in numpy.
        other
            .score
            .partial_cmp(&self.score)
            .unwrap_or(Ordering::Equal)
            .then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// One query's running result over the rows a thread has scanned so far: the `keep` best
/// rows, and (with a margin) every row that was within `margin` of the `keep`-th best score
/// when it was scanned.
///
/// The `keep`-th best score only rises during the scan, so a row within the margin of the
/// final `keep`-th score was within the margin of the running one when it was offered: `near`
/// keeps a superset of the final candidates, trimmed from time to time.
struct Best {
    keep: usize,
    margin: Option<f32>,
    /// A max-heap by `Entry`'s order, so its top is the worst of the `keep` best.
    heap: BinaryHeap<Entry>,
    near: Vec<Entry>,
    trim_at: usize,
    /// `kth() - margin` (no margin: `kth()`): a row scoring less is of no interest.
    floor: f32,
}

impl Best {
    fn new(keep: usize, margin: Option<f32>) -> Self {
        Best {
            keep,
            margin,
            heap: BinaryHeap::with_capacity(keep + 1),
            near: Vec::new(),
            trim_at: 2 * keep + 64,
            floor: f32::NEG_INFINITY,
        }
    }

    /// The running `keep`-th best score: -inf until `keep` rows were seen.
    fn kth(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() == self.keep => worst.score,
            _ => f32::NEG_INFINITY,
        }
    }

    /// Takes a row into account. Most rows score under the floor (the running `keep`-th score
    /// less the margin) and cost one comparison; NaN fails it too, as in numpy, so it is never
    /// a candidate.
    #[inline(always)]
    fn offer(&mut self, row: usize, score: f32) {
        if score >= self.floor {
            self.take(row, score);
        }
    }

    fn take(&mut self, row: usize, score: f32) {
        let entry = Entry {
            score,
            row: row as u32, // < ROWS_MAX, checked by Matrix::new
        };
        if self.heap.len() < self.keep {
            self.heap.push(entry);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if entry < *worst {
                *worst = entry;
            }
        }
        let margin = self.margin.unwrap_or(0.0);
        self.floor = self.kth() - margin;
        if self.margin.is_some() {
            self.near.push(entry);
            if self.near.len() >= self.trim_at {
                let floor = self.floor;
                self.near.retain(|e| e.score >= floor);
                self.trim_at = (2 * self.near.len()).max(2 * self.keep + 64);
            }
        }
    }
}

/// How a scan scores a row for a group of queries.
trait Scorer: Sync {
    type Elem: Sync;
    fn queries(&self) -> usize;
    /// The scores of row number `index`, whose values are `row`, for queries
    /// `first..first + Q`.
    fn score<const Q: usize>(&self, index: usize, row: &[Self::Elem], first: usize) -> [f32; Q];
}

/// Cosine of unit-length float32 queries with rows of known norm: `dot(row, q) / norm`.
struct CosineF32<'a> {
    isa: Isa,
    queries: Vec<&'a [f32]>,
    norms: &'a [f32],
}

impl Scorer for CosineF32<'_> {
    type Elem = f32;

    fn queries(&self) -> usize {
        self.queries.len()
    }

    #[inline(always)]
    fn score<const Q: usize>(&self, index: usize, row: &[f32], first: usize) -> [f32; Q] {
        let queries = std::array::from_fn(|j| self.queries[first + j]);
        let norm = self.norms[index];
        dots_f32::<Q>(self.isa, row, queries).map(|d| d / norm)
    }
}

/// The int8 approximation of the cosine: both sides quantised, the integer dot product
/// exact, then `dot * row_scale * query_scale / norm` in float32 in that order.
struct CosineI8<'a> {
    isa: Isa,
    queries: Vec<Vec<i8>>,
    query_scales: Vec<f32>,
    scales: &'a [f32],
    norms: &'a [f32],
}

impl Scorer for CosineI8<'_> {
    type Elem = i8;

    fn queries(&self) -> usize {
        self.queries.len()
    }

    #[inline(always)]
    fn score<const Q: usize>(&self, index: usize, row: &[i8], first: usize) -> [f32; Q] {
        let queries = std::array::from_fn(|j| self.queries[first + j].as_slice());
        let (scale, norm) = (self.scales[index], self.norms[index]);
        let dots = dots_i8::<Q>(self.isa, row, queries);
        std::array::from_fn(|j| dots[j] as f32 * scale * self.query_scales[first + j] / norm)
    }
}

/// Scans rows `range` of `matrix` (the selected ones only) for every query of `scorer`.
fn scan_range<S: Scorer>(
    scorer: &S,
    matrix: &Matrix<'_, S::Elem>,
    mask: Option<&[u8]>,
    range: Range<usize>,
    best: &mut [Best],
) {
    let dim = matrix.dim();
    let mut selected = [0usize; BLOCK_ROWS];
    for (first, piece) in matrix.pieces(range) {
        for (b, block) in piece.chunks(BLOCK_ROWS * dim).enumerate() {
            let start = first + b * BLOCK_ROWS;
            let mut count = 0;
            for i in 0..block.len() / dim {
                if mask.is_none_or(|m| m[start + i] != 0) {
                    selected[count] = i;
                    count += 1;
                }
            }
            let selected = &selected[..count];
            let (groups, rest) = best.as_chunks_mut::<QUERY_GROUP>();
            for (g, group) in groups.iter_mut().enumerate() {
                for &i in selected {
                    let row = &block[i * dim..][..dim];
                    let scores = scorer.score::<QUERY_GROUP>(start + i, row, g * QUERY_GROUP);
                    for (best, score) in group.iter_mut().zip(scores) {
                        best.offer(start + i, score);
                    }
                }
            }
            let first_rest = groups.len() * QUERY_GROUP;
            for (j, best) in rest.iter_mut().enumerate() {
                for &i in selected {
                    let row = &block[i * dim..][..dim];
                    let [score] = scorer.score::<1>(start + i, row, first_rest + j);
                    best.offer(start + i, score);
                }
            }
        }
    }
}

/// Every query's `Best` over all rows, the rows split into `threads` ranges or fewer.
/// Returns, per thread in row order, the per-query results.
fn scan<S: Scorer>(
    scorer: &S,
    matrix: &Matrix<'_, S::Elem>,
    mask: Option<&[u8]>,
    keep: usize,
    margin: Option<f32>,
    threads: usize,
) -> Vec<Vec<Best>> {
    let rows = matrix.rows();
    // A `keep` above the row count asks for every row, and must not size the heaps: a huge `k`
    // from a caller was a capacity-overflow panic or an aborting allocation failure (found by
    // fuzz/fuzz_targets/kernels.rs; the input is in tests/data/fuzz-rust/kernels/).
    let keep = keep.min(rows);
    let work = rows
        .saturating_mul(matrix.dim())
        .saturating_mul(scorer.queries());
    let threads = threads
        .min(work / WORK_PER_THREAD_MIN)
        .min(rows.div_ceil(BLOCK_ROWS))
        .max(1);
    let fresh = || -> Vec<Best> {
        (0..scorer.queries())
            .map(|_| Best::new(keep, margin))
            .collect()
    };
    let span = rows.div_ceil(threads).div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
    let range = |t: usize| (t * span).min(rows)..((t + 1) * span).min(rows);
    if threads == 1 {
        let mut best = fresh();
        scan_range(scorer, matrix, mask, 0..rows, &mut best);
        return vec![best];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut best = fresh();
                    scan_range(scorer, matrix, mask, range(t), &mut best);
                    best
                })
            })
            .collect();
        let mut first = fresh();
        scan_range(scorer, matrix, mask, range(0), &mut first);
        let mut all = vec![first];
        // A panic in a scan thread is a bug here, not bad input: pass it on.
        all.extend(handles.into_iter().map(|h| h.join().expect("scan thread")));
        all
    })
}

/// The `keep` best entries of query `q` over all threads, best first.
fn merged_best(results: &[Vec<Best>], q: usize, keep: usize) -> Vec<Entry> {
    let mut all: Vec<Entry> = results
        .iter()
        .flat_map(|r| r[q].heap.iter().copied())
        .collect();
    all.sort_unstable();
    all.truncate(keep);
    all
}

fn check_vectors(
    matrix_rows: usize,
    dim: usize,
    norms: &[f32],
    queries: usize,
    mask: Option<&[u8]>,
) -> Result<usize, ShapeError> {
    check(norms.len() == matrix_rows, || {
        format!("norms has {} values for {matrix_rows} rows", norms.len())
    })?;
    check(queries.is_multiple_of(dim), || {
        format!("queries has {queries} values, not a whole number of rows of {dim}")
    })?;
    if let Some(mask) = mask {
        check(mask.len() == matrix_rows, || {
            format!("mask has {} values for {matrix_rows} rows", mask.len())
        })?;
    }
    Ok(queries / dim)
}

/// For each query (rows of `queries`, unit length), the rows whose score is within `margin` of
/// the `k`-th best, ascending: the candidates that exact search rescores.
///
/// A row's score is `dot(row, query) / norms[row]` in float32 (its cosine when the query has
/// unit length). Only rows whose `mask` byte is non-zero take part (no mask: all rows); the
/// others are never read. With `s` the `k`-th best score among them, the candidates are the
/// selected rows scoring at least `s - margin`; when at most `k` rows are selected, all of
/// them (`k = 0`: none). Rows scoring NaN are never candidates. The result is the same for any
/// `threads`: the rows are split between up to that many threads when there is enough work.
///
/// Why a margin makes the candidates safe: for any order of summation, a float32 dot product
/// of length `d` is within `d * 2^-24 * |row| * |query|` of the true one, so each score is
/// within `E = (d + 4) * 2^-24` of the true cosine (the rounding of the query and of the
/// norm and the division add the 4), and so is the `k`-th best score. A row among the true
/// `k` best (ties included) then scores at least `s - 2E`, and is a candidate whenever
/// `margin >= 2E`: about 4.9e-4 at the largest dimension, 4096, under the 1e-3 that
/// `mnemos.index.vector.RESCORE_MARGIN` uses. This holds for this loop and for numpy's BLAS
/// alike, so both return every row of the exact answer.
pub fn candidates(
    matrix: &Matrix<'_, f32>,
    norms: &[f32],
    queries: &[f32],
    mask: Option<&[u8]>,
    k: usize,
    margin: f32,
    threads: usize,
) -> Result<Vec<Vec<u32>>, ShapeError> {
    let dim = matrix.dim();
    let count = check_vectors(matrix.rows(), dim, norms, queries.len(), mask)?;
    check(margin.is_finite() && margin >= 0.0, || {
        format!("margin must be finite and at least 0; got {margin}")
    })?;
    if k == 0 || count == 0 {
        return Ok(vec![Vec::new(); count]);
    }
    let scorer = CosineF32 {
        isa: Isa::detect(),
        queries: queries.chunks_exact(dim).collect(),
        norms,
    };
    let results = scan(&scorer, matrix, mask, k, Some(margin), threads);
    Ok((0..count)
        .map(|q| {
            let best = merged_best(&results, q, k);
            let kth = match best.last() {
                Some(e) if best.len() == k => e.score,
                _ => f32::NEG_INFINITY,
            };
            let floor = kth - margin;
            results
                .iter()
                .flat_map(|r| r[q].near.iter())
                .filter(|e| e.score >= floor)
                .map(|e| e.row)
                .collect()
        })
        .collect())
}

/// Symmetric int8 codes of one vector: `scale = max|x| / 127` and `code = x / scale` rounded
/// half to even (all float32), so `x ≈ code * scale`. A zero vector gets scale 0 and codes 0.
#[inline(always)]
fn quantize_row(values: &[f32], codes: &mut [i8]) -> f32 {
    let peak = values.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = peak / INT8_CODE_MAX;
    if scale > 0.0 {
        for (code, x) in codes.iter_mut().zip(values) {
            // In -127..=127 after the clamp, so the cast is exact.
            *code = (x / scale)
                .round_ties_even()
                .clamp(-INT8_CODE_MAX, INT8_CODE_MAX) as i8;
        }
    } else {
        codes.fill(0);
    }
    scale
}

/// The int8 codes (row-major, `dim` per row) and per-row scales of `matrix` (`dim` values per
/// row): see `quantize_row`. A quarter of the bytes of the float32 rows, plus 4 per row.
pub fn quantize(matrix: &[f32], dim: usize) -> Result<(Vec<i8>, Vec<f32>), ShapeError> {
    check(dim >= 1, || "dim must be at least 1".into())?;
    check(matrix.len().is_multiple_of(dim), || {
        format!(
            "matrix has {} values, not a whole number of rows of {dim}",
            matrix.len()
        )
    })?;
    let mut codes = vec![0i8; matrix.len()];
    let mut scales = vec![0.0f32; matrix.len() / dim];
    match Isa::detect() {
        Isa::Baseline => quantize_rows(matrix, dim, &mut codes, &mut scales),
        // SAFETY: `Isa` only names an instruction set the CPU was found to have, and AVX-512
        // CPUs have AVX2. (Quantising is not worth a third build.)
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe {
            quantize_rows_avx2(matrix, dim, &mut codes, &mut scales)
        },
    }
    Ok((codes, scales))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_rows_avx2(matrix: &[f32], dim: usize, codes: &mut [i8], scales: &mut [f32]) {
    quantize_rows(matrix, dim, codes, scales);
}

#[inline(always)]
fn quantize_rows(matrix: &[f32], dim: usize, codes: &mut [i8], scales: &mut [f32]) {
    let rows = matrix.chunks_exact(dim).zip(codes.chunks_exact_mut(dim));
    for ((row, codes), scale) in rows.zip(scales) {
        *scale = quantize_row(row, codes);
    }
}

/// Approximate search over int8 codes, then exact rescoring: for each query (rows of
/// `queries`), the best `min(k, selected rows)` rows as (row, score), best first (higher score,
/// then lower row).
///
/// The query is quantised like the rows (`quantize`), and each selected row gets the
/// approximate score `idot * scale[row] * query_scale / norms[row]` (the integer dot product
/// is exact, the rest float32 in that order, so numpy computes the same bits). The best
/// `max(rescore, k)` rows by that score (ties to the lower row) are then scored exactly,
/// `dot_f64(row, query) / norms[row]` over the float32 rows of `matrix`, and the best `k` of
/// them returned. `codes` and `matrix` have the same rows; only candidate rows of `matrix`
/// are read.
#[allow(clippy::too_many_arguments)]
pub fn search_int8(
    codes: &Matrix<'_, i8>,
    scales: &[f32],
    matrix: &Matrix<'_, f32>,
    norms: &[f32],
    queries: &[f32],
    mask: Option<&[u8]>,
    k: usize,
    rescore: usize,
    threads: usize,
) -> Result<Vec<Vec<(u32, f64)>>, ShapeError> {
    let (rows, dim) = (matrix.rows(), matrix.dim());
    let count = check_vectors(rows, dim, norms, queries.len(), mask)?;
    check(codes.rows() == rows && codes.dim() == dim, || {
        format!(
            "codes are {} x {} for a matrix of {rows} x {dim}",
            codes.rows(),
            codes.dim()
        )
    })?;
    check(scales.len() == rows, || {
        format!("scales has {} values for {rows} rows", scales.len())
    })?;
    check(dim <= INT8_DIM_MAX, || {
        format!("dim {dim} is over the int8 limit {INT8_DIM_MAX}")
    })?;
    if k == 0 || count == 0 {
        return Ok(vec![Vec::new(); count]);
    }
    let keep = rescore.max(k);
    let mut scorer = CosineI8 {
        isa: Isa::detect(),
        queries: Vec::with_capacity(count),
        query_scales: Vec::with_capacity(count),
        scales,
        norms,
    };
    for query in queries.chunks_exact(dim) {
        let mut codes = vec![0i8; dim];
        scorer.query_scales.push(quantize_row(query, &mut codes));
        scorer.queries.push(codes);
    }
    let results = scan(&scorer, codes, mask, keep, None, threads);
    Ok(queries
        .chunks_exact(dim)
        .enumerate()
        .map(|(q, query)| {
            let mut exact: Vec<(u32, f64)> = merged_best(&results, q, keep)
                .iter()
                .map(|e| {
                    let row = e.row as usize;
                    let score = dot_f64(matrix.row(row), query) / f64::from(norms[row]);
                    (e.row, score)
                })
                .collect();
            exact.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            exact.truncate(k);
            exact
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of each kernel returns the same bits as the baseline build, and a group
    /// of queries the same as one query at a time.
    #[test]
    fn builds_and_groups_agree_to_the_bit() {
        let isas = Isa::available();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        for dim in [1, 15, 16, 17, 100, 384] {
            let row: Vec<f32> = (0..dim).map(|_| next()).collect();
            let qs: Vec<Vec<f32>> = (0..4).map(|_| (0..dim).map(|_| next()).collect()).collect();
            let group = [&qs[0][..], &qs[1][..], &qs[2][..], &qs[3][..]];
            let mut codes = vec![0i8; dim];
            quantize_row(&row, &mut codes);
            let qcodes: Vec<Vec<i8>> = qs
                .iter()
                .map(|q| {
                    let mut c = vec![0i8; dim];
                    quantize_row(q, &mut c);
                    c
                })
                .collect();
            let igroup = [
                &qcodes[0][..],
                &qcodes[1][..],
                &qcodes[2][..],
                &qcodes[3][..],
            ];
            let want = dots_f32::<4>(Isa::Baseline, &row, group);
            let iwant = dots_i8::<4>(Isa::Baseline, &codes, igroup);
            for &isa in &isas {
                assert_eq!(dots_f32::<4>(isa, &row, group), want);
                assert_eq!(dots_i8::<4>(isa, &codes, igroup), iwant);
                for j in 0..4 {
                    assert_eq!(dots_f32::<1>(isa, &row, [group[j]])[0], want[j]);
                    assert_eq!(dots_i8::<1>(isa, &codes, [igroup[j]])[0], iwant[j]);
                }
            }
            let naive: i32 = codes
                .iter()
                .zip(&qcodes[0])
                .map(|(a, b)| i32::from(*a) * i32::from(*b))
                .sum();
            assert_eq!(iwant[0], naive);
        }
    }
}
