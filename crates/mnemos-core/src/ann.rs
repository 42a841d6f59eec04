//! A deterministic approximate-nearest-neighbour index: HNSW (Malkov & Yashunin, "Efficient and
//! robust approximate nearest neighbor search using Hierarchical Navigable Small World graphs",
//! 2016) over cosine similarity, following hnswlib's algorithm so that the same `M`,
//! `ef_construction` and `ef` mean the same thing in both.
//!
//! Python reference: none with the same results: the reference for an approximate search is the
//! exact search (`mnemos/index/vector.py`), which this index must agree with on recall, not bit
//! for bit. What *is* exact is the index itself: the same sequence of inserts and deletes builds
//! the same bytes (`to_bytes`) and returns the same results on every machine.
//!
//! # Model
//!
//! The index maps **rows** (the database's `u32` row numbers) to unit vectors. Each insert adds a
//! **node**, numbered 0, 1, 2, … in insert order, holding its row, its level, a deleted flag, a
//! normalised copy of the vector and its neighbour lists. A row has at most one live node; a
//! deleted node (a *tombstone*) keeps its vector and links, so searches still route through it,
//! but it is never returned and no later insert links to it. Inserting a row again after deleting
//! it adds a new node. `len` counts live nodes, `deleted` tombstones.
//!
//! The index keeps its own normalised `f32` copy of every vector instead of borrowing the
//! database's matrix at search time. This costs `4 * dim` bytes per node, but it makes the index
//! self-contained: the database overwrites a row in place when a memory's vector changes or a
//! forgotten id is remembered again, and renumbers rows on `compact`; a tombstone keeps routing
//! correctly through all of that because its vector is its own, and the graph is a function of
//! the inserts and deletes alone. Normalising once also makes every distance a plain dot
//! product. Input is still zero-copy: vectors and queries are read in place.
//!
//! # Determinism
//!
//! - A node's level comes from a caller-supplied 64-bit `key` (the database passes the seq of
//!   the event that gave the row its vector), mixed by [`mix64`] and turned into a level with
//!   integer arithmetic only ([`level_for`]): no random generator, no `ln`, whose last bit
//!   differs between math libraries.
//! - Inserts are single-threaded and processed in call order; a batch insert is exactly the same
//!   sequence of single inserts, so how inserts are split into batches does not matter.
//! - Every ordering is total: candidates compare by distance (`f32::total_cmp`) and then by node
//!   number, results by score and then by row. Only `Vec`, `BTreeMap` and `BinaryHeap` over
//!   totally ordered keys are used: nothing depends on hash iteration order or thread timing.
//! - Arithmetic is IEEE-754 in a fixed order. The norm is a sequential `f64` sum and a correctly
//!   rounded `sqrt`; each component is an `f64` division rounded to `f32`. The dot product
//!   ([`dot`]) accumulates into [`DOT_LANES`] lanes, element `i` into lane `i % DOT_LANES`, then
//!   sums the lanes in a fixed pairwise tree. Rust gives each `+` and `*` its own rounding: it
//!   never contracts `a * b + c` into a fused multiply-add and never reassociates, so the SSE2,
//!   AVX2 and AVX-512 builds of that loop (chosen at run time) and other architectures compute
//!   the same bits; they only pack the independent lanes into wider registers. This assumes the
//!   default floating-point environment (no flush-to-zero), which Rust and CPython keep.
//! - A batch search may use threads, but each query's result is a pure function of the index
//!   and the query, so results do not depend on the thread count.
//!
//! # Parameters
//!
//! - `m` (default [`DEFAULT_M`]): links per node on the upper layers, `2 * m` on layer 0. More
//!   links raise recall at a given `ef` and cost memory (`8 * m` bytes per node) and build time.
//! - `ef_construction` (default [`DEFAULT_EF_CONSTRUCTION`]): the candidate list while inserting.
//!   Higher builds a better graph, slower.
//! - `ef_search` (default [`DEFAULT_EF_SEARCH`]): the candidate list while searching, raised to
//!   `k` when smaller; can be given per search. Higher is slower and closer to exact.
//!
//! # Deletes, filters and rebuilds
//!
//! A search with deleted nodes or a row mask only counts accepted nodes (live, and allowed by the
//! mask) toward its `ef` results, and keeps exploring until it has `ef` of them. If it runs out of
//! reachable nodes first, it scans the nodes it has not visited, so a search returns
//! `min(k, accepted)` rows even when the filter is very selective or part of the graph is
//! unreachable. That makes a very selective mask as slow as a scan; callers should then prefer
//! the exact path. Deletes are not repaired: tombstones keep routing. Rebuild (a new index over
//! the live rows, inserted in row order with the same keys) when `deleted() >= len()`: searches
//! then visit about twice the nodes for the same recall and half the memory is tombstones.
//!
//! # Serialized form (version 1)
//!
//! All integers are little-endian; `N` is the number of nodes, `dim`, `m` and `U` come from the
//! header. The sections follow the header with no gaps except the stated padding.
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 8 | magic | ASCII `MNEMOANN` |
//! | 8 | 4 | version | `1` |
//! | 12 | 4 | dim | 1 … [`DIM_MAX`] |
//! | 16 | 4 | m | [`M_MIN`] … [`M_MAX`] |
//! | 20 | 4 | ef_construction | 1 … [`EF_MAX`] |
//! | 24 | 4 | ef_search | 1 … [`EF_MAX`] |
//! | 28 | 4 | nodes | `N` ≤ [`NODES_MAX`] |
//! | 32 | 4 | deleted | number of nodes with the deleted flag |
//! | 36 | 4 | entry | the entry node, `< N`, on the highest level; `0xFFFFFFFF` when `N = 0` |
//! | 40 | 4 | upper_blocks | `U`, the sum of all nodes' levels |
//! | 44 | 4 | reserved | 0 |
//! | 48 | 8 | total_bytes | the length of the whole serialized index, CRC included |
//! | 56 | 8 | reserved | 0 |
//! | 64 | 4 × N | rows | `u32` row of each node; live nodes have distinct rows; a deleted node has the row it had, or `0xFFFFFFFF` after a renumbering |
//! | | N | levels | `u8` level of each node, ≤ [`LEVEL_MAX`] |
//! | | N | flags | `u8`: bit 0 set if the node is deleted; other bits 0 |
//! | | 0–3 | padding | zero bytes up to a multiple of 4 |
//! | | 4 × N × dim | vectors | `f32` unit vector of each node, finite |
//! | | 4 × N × (1 + 2m) | layer 0 | per node: a `u32` count `c ≤ 2m`, then `c` neighbour nodes, then `2m - c` zeros |
//! | | 4 × U × (1 + m) | upper layers | per node in node order, per level `1 … level`: a count `c ≤ m`, `c` neighbours, `m - c` zeros |
//! | | 4 | crc | CRC-32 (`crate::crc32` from 0) of every byte before it |
//!
//! Valid means: the length equals `total_bytes` and the CRC matches; every field is in range;
//! `deleted` equals the flags set; `U` equals the levels' sum; the entry has the highest level;
//! every neighbour is another node (`< N`, not itself, not repeated in the list) whose level is at
//! least the layer's; vectors are finite. [`Hnsw::from_bytes`] checks all of it and loads without
//! re-inserting anything.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::sync::Mutex;

use crate::crc32;

/// Default links per node on the upper layers (`2 * m` on layer 0), as in hnswlib.
pub const DEFAULT_M: usize = 16;
/// Default candidate list while inserting, as in hnswlib's examples.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Default candidate list while searching (recall@10 ≥ 0.95 on the clustered 384-d benchmark at
/// 100k, `python -m startup_bench.ann`).
pub const DEFAULT_EF_SEARCH: usize = 64;

/// The largest vector dimension (FORMAT.md "Limits", `DIM_MAX`).
pub const DIM_MAX: usize = 4096;
/// Fewer than two links per node cannot make a navigable graph.
pub const M_MIN: usize = 2;
/// More links than this only cost memory and time: hnswlib advises `m` up to 64.
pub const M_MAX: usize = 128;
/// The largest `ef` (and `k`): bounds the memory of one search's candidate lists.
pub const EF_MAX: usize = 100_000;
/// The highest level a node can have. With `m = 2` a level above 32 has probability 2^-32.
pub const LEVEL_MAX: u8 = 32;
/// The most nodes one index holds: node numbers are `u32`, with `u32::MAX` meaning "none".
pub const NODES_MAX: usize = (1 << 31) - 1;
/// Lanes of the dot product's accumulator; element `i` goes to lane `i % DOT_LANES`.
pub const DOT_LANES: usize = 16;

/// The magic bytes that start a serialized index.
pub const MAGIC: [u8; 8] = *b"MNEMOANN";
/// The serialized form's version (see the module documentation).
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the serialized header.
pub const HEADER_BYTES: usize = 64;
const NO_NODE: u32 = u32::MAX;
/// The row of a deleted node after [`Hnsw::renumber`].
const NO_ROW: u32 = u32::MAX;
/// Batch searches split queries into chunks of at least this many per thread.
const QUERIES_PER_THREAD_MIN: usize = 8;

/// Why an operation on the index failed. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnError {
    /// A parameter (`dim`, `m`, `ef`, `k`, a length) is out of range.
    Invalid(String),
    /// A vector or query has NaN or infinity at this position.
    NotFinite { position: usize },
    /// A vector or query is all zeros, so it has no direction.
    Zero,
    /// An insert named a row that already has a live node.
    RowLive(u32),
    /// A delete named a row without a live node.
    RowNotLive(u32),
    /// The index holds [`NODES_MAX`] nodes.
    Full,
    /// The error of one item of a batch; the batch changed nothing.
    Item { item: usize, error: Box<AnnError> },
    /// Serialized bytes that are not a valid index: where and why.
    Corrupt { offset: usize, reason: String },
}

impl fmt::Display for AnnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnError::Invalid(why) => f.write_str(why),
            AnnError::NotFinite { position } => {
                write!(f, "vector has NaN or infinity at position {position}")
            }
            AnnError::Zero => f.write_str("vector is all zeros, so it has no direction"),
            AnnError::RowLive(row) => write!(
                f,
                "row {row} is already in the index; delete it before inserting it again"
            ),
            AnnError::RowNotLive(row) => write!(f, "row {row} has no live entry in the index"),
            AnnError::Full => write!(f, "the index holds its limit of {NODES_MAX} nodes"),
            AnnError::Item { item, error } => write!(f, "item {item}: {error}"),
            AnnError::Corrupt { offset, reason } => {
                write!(f, "damaged ANN index at byte {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for AnnError {}

/// Index parameters (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            ef_search: DEFAULT_EF_SEARCH,
        }
    }
}

impl Params {
    fn check(&self) -> Result<(), AnnError> {
        if !(M_MIN..=M_MAX).contains(&self.m) {
            return Err(AnnError::Invalid(format!(
                "m must be from {M_MIN} to {M_MAX}; got {}",
                self.m
            )));
        }
        check_ef("ef_construction", self.ef_construction)?;
        check_ef("ef_search", self.ef_search)
    }
}

fn check_ef(name: &str, ef: usize) -> Result<(), AnnError> {
    if (1..=EF_MAX).contains(&ef) {
        Ok(())
    } else {
        Err(AnnError::Invalid(format!(
            "{name} must be from 1 to {EF_MAX}; got {ef}"
        )))
    }
}

/// The splitmix64 output function: a bijection of `u64` that spreads every input bit over the
/// whole output, so even consecutive keys give independent-looking levels.
#[must_use]
pub fn mix64(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The level of a node inserted with `key`: the largest `l ≤ LEVEL_MAX` with
/// `mix64(key) * m^l < 2^64`, so `P(level ≥ l) = m^-l`, the distribution hnswlib draws as
/// `floor(-ln(u) / ln(m))`, computed with integers only.
#[must_use]
pub fn level_for(key: u64, m: usize) -> u8 {
    let mut scaled = u128::from(mix64(key));
    let mut level = 0u8;
    while level < LEVEL_MAX {
        scaled *= m as u128;
        if scaled >> 64 != 0 {
            break;
        }
        level += 1;
    }
    level
}

/// The dot product in the fixed order described in the module documentation, dispatched at
/// run time to the widest vector instructions available. Same bits as [`dot_portable`].
#[inline]
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { dot_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

/// [`dot`] compiled for the baseline instruction set, without dispatch: the reference the
/// dispatched versions are tested against.
#[must_use]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    // The lanes as groups of 8 (one AVX register each): LLVM vectorises this shape well, where a
    // flat array of lanes became shuffles. The arithmetic is the same either way.
    let mut groups = [[0f32; 8]; DOT_LANES / 8];
    let (a_chunks, a_tail) = a.as_chunks::<DOT_LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<DOT_LANES>();
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for (g, group) in groups.iter_mut().enumerate() {
            for (j, lane) in group.iter_mut().enumerate() {
                *lane += x[8 * g + j] * y[8 * g + j];
            }
        }
    }
    let mut acc = [0f32; DOT_LANES];
    for (g, group) in groups.iter().enumerate() {
        acc[8 * g..8 * g + 8].copy_from_slice(group);
    }
    for ((lane, x), y) in acc.iter_mut().zip(a_tail).zip(b_tail) {
        *lane += x * y;
    }
    let mut width = DOT_LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (lane, other) in low.iter_mut().zip(&high[..width]) {
            *lane += *other;
        }
    }
    acc[0]
}

/// Appends `vector / |vector|` to `out`: the norm summed sequentially in `f64`, each component
/// divided in `f64` and rounded to `f32`.
fn push_unit(vector: &[f32], out: &mut Vec<f32>) -> Result<(), AnnError> {
    let mut sum = 0f64;
    for (position, &x) in vector.iter().enumerate() {
        if !x.is_finite() {
            return Err(AnnError::NotFinite { position });
        }
        let x = f64::from(x);
        sum += x * x;
    }
    // Finite f32 squares summed over at most DIM_MAX terms stay far below f64::MAX.
    if sum == 0.0 {
        return Err(AnnError::Zero);
    }
    let norm = sum.sqrt();
    out.extend(vector.iter().map(|&x| (f64::from(x) / norm) as f32));
    Ok(())
}

/// Writes `values` as 4-byte little-endian items at the start of `out` and returns the rest.
/// Filling exact chunks of a slice compiles to wide copies (appending to a `Vec` item by item
/// was ten times slower).
fn put_le<'a, T: Copy>(
    out: &'a mut [u8],
    values: &[T],
    to_le: impl Fn(T) -> [u8; 4],
) -> &'a mut [u8] {
    let (dst, rest) = out.split_at_mut(4 * values.len());
    for (chunk, &v) in dst.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&to_le(v));
    }
    rest
}

/// A cache hint: start loading the line holding `p`. No effect on results, and never a fault
/// (a prefetch of any address is allowed), so callers may pass a pointer computed with
/// `wrapping_add`.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch only hints the cache: it
        // reads nothing the program sees and cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A node and its distance to the query: the negated cosine similarity, so smaller is closer.
/// Ordered by distance, then node number: a total order, so heaps pop in one defined order.
#[derive(Clone, Copy, Debug)]
struct Cand {
    dist: f32,
    node: u32,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

/// Which nodes a search has seen: a stamp per node, so clearing is one increment.
struct Visited {
    marks: Vec<u16>,
    stamp: u16,
}

impl Visited {
    fn new() -> Self {
        Visited {
            marks: Vec::new(),
            stamp: 0,
        }
    }

    fn reset(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        prefetch(self.marks.as_ptr().wrapping_add(node as usize));
    }

    /// Marks `node`; true if it was not marked yet.
    #[inline]
    fn insert(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        if *mark == self.stamp {
            false
        } else {
            *mark = self.stamp;
            true
        }
    }
}

/// Cores this process may use, asked once.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One result: a row and its cosine similarity with the query.
pub type Hit = (u32, f32);

/// The index (see the module documentation).
pub struct Hnsw {
    dim: usize,
    params: Params,
    /// Node-major unit vectors, `dim` per node.
    vectors: Vec<f32>,
    rows: Vec<u32>,
    levels: Vec<u8>,
    deleted: Vec<bool>,
    deleted_count: usize,
    /// Layer 0: per node a count then `2m` slots.
    links0: Vec<u32>,
    /// Where each node's first upper-layer block starts in `upper` (blocks of `1 + m`).
    upper_start: Vec<usize>,
    upper: Vec<u32>,
    entry: Option<u32>,
    /// Row -> its live node.
    live: BTreeMap<u32, u32>,
    /// Reusable visited sets: a search takes one and puts it back.
    pool: Mutex<Vec<Visited>>,
}

impl fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hnsw")
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("nodes", &self.rows.len())
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl Hnsw {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize, params: Params) -> Result<Self, AnnError> {
        if !(1..=DIM_MAX).contains(&dim) {
            return Err(AnnError::Invalid(format!(
                "dim must be from 1 to {DIM_MAX}; got {dim}"
            )));
        }
        params.check()?;
        Ok(Hnsw {
            dim,
            params,
            vectors: Vec::new(),
            rows: Vec::new(),
            levels: Vec::new(),
            deleted: Vec::new(),
            deleted_count: 0,
            links0: Vec::new(),
            upper_start: Vec::new(),
            upper: Vec::new(),
            entry: None,
            live: BTreeMap::new(),
            pool: Mutex::new(Vec::new()),
        })
    }

    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    #[must_use]
    pub fn params(&self) -> Params {
        self.params
    }

    /// Sets the default `ef` of searches (it is saved with the index).
    pub fn set_ef_search(&mut self, ef: usize) -> Result<(), AnnError> {
        check_ef("ef_search", ef)?;
        self.params.ef_search = ef;
        Ok(())
    }

    /// Live rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Tombstones: deleted nodes kept for routing.
    #[must_use]
    pub fn deleted(&self) -> usize {
        self.deleted_count
    }

    /// All nodes, live and deleted.
    #[must_use]
    pub fn nodes(&self) -> usize {
        self.rows.len()
    }

    /// Whether `row` has a live node.
    #[must_use]
    pub fn contains(&self, row: u32) -> bool {
        self.live.contains_key(&row)
    }

    fn m0(&self) -> usize {
        2 * self.params.m
    }

    #[inline]
    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Asks the CPU to start loading `node`'s vector (its first line; the hardware prefetcher
    /// follows the rest).
    #[inline]
    fn prefetch_vector(&self, node: u32) {
        prefetch(self.vectors.as_ptr().wrapping_add(node as usize * self.dim));
    }

    /// Asks the CPU to start loading `node`'s list on `layer`.
    #[inline]
    fn prefetch_links(&self, node: u32, layer: u8) {
        let store = if layer == 0 {
            &self.links0
        } else {
            &self.upper
        };
        prefetch(store.as_ptr().wrapping_add(self.list_start(node, layer)));
    }

    #[inline]
    fn distance(&self, query: &[f32], node: u32) -> f32 {
        -dot(query, self.vector(node))
    }

    /// Where `node`'s list on `layer` starts (its count) in `links0` or `upper`.
    #[inline]
    fn list_start(&self, node: u32, layer: u8) -> usize {
        if layer == 0 {
            node as usize * (1 + self.m0())
        } else {
            self.upper_start[node as usize] + (usize::from(layer) - 1) * (1 + self.params.m)
        }
    }

    #[inline]
    fn links(&self, node: u32, layer: u8) -> &[u32] {
        let start = self.list_start(node, layer);
        let store = if layer == 0 {
            &self.links0
        } else {
            &self.upper
        };
        let count = store[start] as usize;
        &store[start + 1..start + 1 + count]
    }

    fn set_links(&mut self, node: u32, layer: u8, links: &[Cand]) {
        let start = self.list_start(node, layer);
        let capacity = if layer == 0 { self.m0() } else { self.params.m };
        debug_assert!(links.len() <= capacity);
        let store = if layer == 0 {
            &mut self.links0
        } else {
            &mut self.upper
        };
        store[start] = links.len() as u32;
        let slots = &mut store[start + 1..start + 1 + capacity];
        for (slot, c) in slots.iter_mut().zip(links) {
            *slot = c.node;
        }
        slots[links.len()..].fill(0);
    }

    fn take_visited(&self) -> Visited {
        let mut visited = self
            .pool
            .lock()
            .map(|mut pool| pool.pop())
            .unwrap_or(None)
            .unwrap_or_else(Visited::new);
        visited.reset(self.rows.len());
        visited
    }

    fn put_visited(&self, visited: Visited) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(visited);
        }
    }

    fn check_dim(&self, len: usize) -> Result<(), AnnError> {
        if len == self.dim {
            Ok(())
        } else {
            Err(AnnError::Invalid(format!(
                "vector has {len} dimensions but the index holds {}-dimensional vectors",
                self.dim
            )))
        }
    }

    /// Adds `row` with `vector` (`dim` finite values, not all zero; the index keeps it
    /// normalised) at the level that `key` gives ([`level_for`]). `row` must not be live.
    pub fn insert(&mut self, row: u32, key: u64, vector: &[f32]) -> Result<(), AnnError> {
        self.check_dim(vector.len())?;
        if self.live.contains_key(&row) {
            return Err(AnnError::RowLive(row));
        }
        if self.rows.len() >= NODES_MAX {
            return Err(AnnError::Full);
        }
        let mut unit = Vec::with_capacity(self.dim);
        push_unit(vector, &mut unit)?;
        self.insert_unit(row, level_for(key, self.params.m), &unit);
        Ok(())
    }

    /// The same as inserting `rows[i]`, `keys[i]`, `vectors[i * dim..(i + 1) * dim]` one by one,
    /// but every item is checked first: an error inserts nothing.
    pub fn insert_batch(
        &mut self,
        rows: &[u32],
        keys: &[u64],
        vectors: &[f32],
    ) -> Result<(), AnnError> {
        if keys.len() != rows.len() || vectors.len() != rows.len() * self.dim {
            return Err(AnnError::Invalid(format!(
                "a batch needs one key and one {}-dimensional vector per row; got {} rows, {} keys and {} floats",
                self.dim,
                rows.len(),
                keys.len(),
                vectors.len()
            )));
        }
        if self.rows.len() + rows.len() > NODES_MAX {
            return Err(AnnError::Full);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut units = Vec::with_capacity(vectors.len());
        for (item, (&row, vector)) in rows.iter().zip(vectors.chunks_exact(self.dim)).enumerate() {
            let fail = |error| AnnError::Item {
                item,
                error: Box::new(error),
            };
            if self.live.contains_key(&row) || !seen.insert(row) {
                return Err(fail(AnnError::RowLive(row)));
            }
            push_unit(vector, &mut units).map_err(fail)?;
        }
        let n = rows.len();
        self.vectors.reserve(units.len());
        self.rows.reserve(n);
        self.levels.reserve(n);
        self.deleted.reserve(n);
        self.links0.reserve(n * (1 + self.m0()));
        self.upper_start.reserve(n);
        for ((&row, &key), unit) in rows.iter().zip(keys).zip(units.chunks_exact(self.dim)) {
            self.insert_unit(row, level_for(key, self.params.m), unit);
        }
        Ok(())
    }

    fn insert_unit(&mut self, row: u32, level: u8, unit: &[f32]) {
        let node = self.rows.len() as u32;
        self.vectors.extend_from_slice(unit);
        self.rows.push(row);
        self.levels.push(level);
        self.deleted.push(false);
        self.links0.resize(self.links0.len() + 1 + self.m0(), 0);
        self.upper_start.push(self.upper.len());
        self.upper.resize(
            self.upper.len() + usize::from(level) * (1 + self.params.m),
            0,
        );
        self.live.insert(row, node);
        let Some(entry) = self.entry else {
            self.entry = Some(node);
            return;
        };
        let top = self.levels[entry as usize];
        let mut ep = Cand {
            dist: self.distance(unit, entry),
            node: entry,
        };
        for layer in (level + 1..=top).rev() {
            ep = self.greedy(unit, ep, layer);
        }
        let mut visited = self.take_visited();
        for layer in (0..=level.min(top)).rev() {
            // Like hnswlib, new links go to live nodes only; if the search meets none (every
            // node it reaches is deleted), tombstones are better than no links at all.
            let deleted = &self.deleted;
            let mut found = self.search_layer(
                unit,
                ep,
                self.params.ef_construction,
                layer,
                &mut visited,
                |n| !deleted[n as usize],
            );
            if found.is_empty() {
                found = self.search_layer(
                    unit,
                    ep,
                    self.params.ef_construction,
                    layer,
                    &mut visited,
                    |_| true,
                );
            }
            let found = found.into_sorted_vec();
            let chosen = self.select(&found, self.params.m);
            self.set_links(node, layer, &chosen);
            for c in &chosen {
                self.link_back(c.node, node, c.dist, layer);
            }
            ep = found[0];
        }
        self.put_visited(visited);
        if level > top {
            self.entry = Some(node);
        }
    }

    /// Adds `node` (at distance `dist`) to `to`'s list on `layer`, pruning the list with the
    /// heuristic when it is full.
    fn link_back(&mut self, to: u32, node: u32, dist: f32, layer: u8) {
        let capacity = if layer == 0 { self.m0() } else { self.params.m };
        let current = self.links(to, layer);
        let mut list: Vec<Cand> = Vec::with_capacity(current.len() + 1);
        let from = self.vector(to);
        list.extend(current.iter().map(|&n| Cand {
            dist: -dot(from, self.vector(n)),
            node: n,
        }));
        if list.len() < capacity {
            // Keep the existing order and append, as hnswlib does.
            list.push(Cand { dist, node });
            self.set_links(to, layer, &list);
            return;
        }
        list.push(Cand { dist, node });
        list.sort_unstable();
        let kept = self.select(&list, capacity);
        self.set_links(to, layer, &kept);
    }

    /// hnswlib's neighbour heuristic: from `sorted` (closest first), keep a candidate unless one
    /// already kept is closer to it than the base is; stop at `m`. Fewer than `m` candidates are
    /// all kept.
    fn select(&self, sorted: &[Cand], m: usize) -> Vec<Cand> {
        if sorted.len() < m {
            return sorted.to_vec();
        }
        let mut kept: Vec<Cand> = Vec::with_capacity(m);
        for c in sorted {
            if kept.len() >= m {
                break;
            }
            let v = self.vector(c.node);
            if kept.iter().all(|k| -dot(v, self.vector(k.node)) >= c.dist) {
                kept.push(*c);
            }
        }
        kept
    }

    /// Walks `layer` from `ep` to a node none of whose neighbours is closer to `query`.
    fn greedy(&self, query: &[f32], mut ep: Cand, layer: u8) -> Cand {
        loop {
            let mut moved = false;
            for &n in self.links(ep.node, layer) {
                let c = Cand {
                    dist: self.distance(query, n),
                    node: n,
                };
                if c < ep {
                    ep = c;
                    moved = true;
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// hnswlib's best-first search of one layer from `ep`: the up to `ef` closest accepted nodes
    /// it finds. While fewer than `ef` are accepted it keeps exploring, so with deletions or a
    /// mask it stops only with `ef` results or after the whole reachable layer. Resets `visited`.
    fn search_layer(
        &self,
        query: &[f32],
        ep: Cand,
        ef: usize,
        layer: u8,
        visited: &mut Visited,
        accept: impl Fn(u32) -> bool,
    ) -> BinaryHeap<Cand> {
        visited.reset(self.rows.len());
        visited.insert(ep.node);
        let mut top: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        let mut frontier: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::new();
        if accept(ep.node) {
            top.push(ep);
        }
        frontier.push(std::cmp::Reverse(ep));
        while let Some(std::cmp::Reverse(current)) = frontier.pop() {
            if top.len() >= ef && top.peek().is_some_and(|worst| current > *worst) {
                break;
            }
            // The prefetches follow hnswlib: the visited marks of all neighbours, the vector of
            // the next one, the list of the next node to expand. They change no result.
            let links = self.links(current.node, layer);
            for &n in links {
                visited.prefetch(n);
            }
            for (i, &n) in links.iter().enumerate() {
                if let Some(&next) = links.get(i + 1) {
                    self.prefetch_vector(next);
                }
                if !visited.insert(n) {
                    continue;
                }
                let c = Cand {
                    dist: self.distance(query, n),
                    node: n,
                };
                if top.len() < ef || top.peek().is_some_and(|worst| c < *worst) {
                    frontier.push(std::cmp::Reverse(c));
                    if let Some(std::cmp::Reverse(next)) = frontier.peek() {
                        self.prefetch_links(next.node, layer);
                    }
                    if accept(n) {
                        top.push(c);
                        if top.len() > ef {
                            top.pop();
                        }
                    }
                }
            }
        }
        top
    }

    /// The best `k` accepted rows for one unit query.
    /// `scan`: at most `ef` rows can be accepted (see [`Hnsw::scan_only`]), so go straight to
    /// the scan that an exhausted graph search would end with: the same result, sooner.
    fn search_unit(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        mask: Option<&[u8]>,
        scan: bool,
        visited: &mut Visited,
    ) -> Vec<Hit> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let accept = |n: u32| {
            !self.deleted[n as usize]
                && mask.is_none_or(|m| {
                    m.get(self.rows[n as usize] as usize)
                        .is_some_and(|&b| b != 0)
                })
        };
        let mut top = if scan {
            visited.reset(self.rows.len());
            BinaryHeap::new()
        } else {
            let mut ep = Cand {
                dist: self.distance(query, entry),
                node: entry,
            };
            for layer in (1..=self.levels[entry as usize]).rev() {
                ep = self.greedy(query, ep, layer);
            }
            self.search_layer(query, ep, ef, 0, visited, accept)
        };
        if top.len() < ef {
            // The search ran out of reachable nodes: scan the rest, so that a selective filter or
            // an unreachable node still gives min(k, accepted) results.
            for n in 0..self.rows.len() as u32 {
                if visited.insert(n) && accept(n) {
                    top.push(Cand {
                        dist: self.distance(query, n),
                        node: n,
                    });
                    if top.len() > ef {
                        top.pop();
                    }
                }
            }
        }
        let mut found = top.into_vec();
        found.sort_unstable_by(|a, b| {
            a.dist
                .total_cmp(&b.dist)
                .then(self.rows[a.node as usize].cmp(&self.rows[b.node as usize]))
        });
        found.truncate(k);
        found
            .iter()
            .map(|c| (self.rows[c.node as usize], -c.dist))
            .collect()
    }

    /// The search's `ef` (the given or default one, raised to `k`) after checking the inputs.
    fn check_search(&self, k: usize, ef: Option<usize>) -> Result<usize, AnnError> {
        if k > EF_MAX {
            return Err(AnnError::Invalid(format!(
                "k must be at most {EF_MAX}; got {k}"
            )));
        }
        let ef = ef.unwrap_or(self.params.ef_search);
        check_ef("ef", ef)?;
        Ok(ef.max(k))
    }

    /// Whether at most `ef` nodes can be accepted (live rows, or rows the mask allows): a graph
    /// search could then never fill its `ef` results and would visit every reachable node, so
    /// scanning the nodes directly gives the same exact result for less.
    fn scan_only(&self, ef: usize, mask: Option<&[u8]>) -> bool {
        let limit = match mask {
            Some(m) => m.iter().filter(|&&b| b != 0).count(),
            None => self.live.len(),
        };
        limit <= ef
    }

    /// The best `k` live rows for `query` (any non-zero vector of `dim`), best first: the row and
    /// the cosine similarity, ties broken by the lower row. `ef` defaults to the index's
    /// `ef_search` and is raised to `k`. With a `mask`, only rows `r` with `mask[r] != 0` are
    /// returned (rows past its end are not).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        mask: Option<&[u8]>,
    ) -> Result<Vec<Hit>, AnnError> {
        self.check_dim(query.len())?;
        let ef = self.check_search(k, ef)?;
        let mut unit = Vec::with_capacity(self.dim);
        push_unit(query, &mut unit)?;
        let scan = self.scan_only(ef, mask);
        let mut visited = self.take_visited();
        let hits = self.search_unit(&unit, k, ef, mask, scan, &mut visited);
        self.put_visited(visited);
        Ok(hits)
    }

    /// [`Hnsw::search`] for each `dim`-float row of `queries`, on up to `threads` threads (0: as
    /// many as the machine has). Results do not depend on `threads`.
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
        mask: Option<&[u8]>,
        threads: usize,
    ) -> Result<Vec<Vec<Hit>>, AnnError> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(AnnError::Invalid(format!(
                "queries hold {} floats, not a whole number of {}-dimensional rows",
                queries.len(),
                self.dim
            )));
        }
        let ef = self.check_search(k, ef)?;
        let count = queries.len() / self.dim;
        let mut units = Vec::with_capacity(queries.len());
        for (item, query) in queries.chunks_exact(self.dim).enumerate() {
            push_unit(query, &mut units).map_err(|error| AnnError::Item {
                item,
                error: Box::new(error),
            })?;
        }
        let scan = self.scan_only(ef, mask);
        let useful = count.div_ceil(QUERIES_PER_THREAD_MIN).max(1);
        let threads = match threads {
            // Asking the OS for the core count reads cgroup files (tens of microseconds), so
            // only when threads could help, and once.
            0 if useful > 1 => cores().min(useful),
            0 => 1,
            n => n.min(useful),
        };
        let run = |chunk: &[f32]| {
            let mut visited = self.take_visited();
            let hits: Vec<Vec<Hit>> = chunk
                .chunks_exact(self.dim)
                .map(|q| self.search_unit(q, k, ef, mask, scan, &mut visited))
                .collect();
            self.put_visited(visited);
            hits
        };
        if threads == 1 {
            return Ok(run(&units));
        }
        let per_thread = count.div_ceil(threads) * self.dim;
        let parts: Vec<Vec<Vec<Hit>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = units
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || run(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a search thread panicked"))
                .collect()
        });
        Ok(parts.into_iter().flatten().collect())
    }

    /// Marks `row`'s live node deleted: it is never returned again but still routes searches.
    pub fn delete(&mut self, row: u32) -> Result<(), AnnError> {
        let node = self.live.remove(&row).ok_or(AnnError::RowNotLive(row))?;
        self.deleted[node as usize] = true;
        self.deleted_count += 1;
        Ok(())
    }

    /// Renumbers rows the way the database's `compact` does: `kept` lists the surviving old
    /// rows in ascending order, and old row `kept[i]` becomes row `i`. Every live row must be
    /// kept. Deleted nodes keep routing; their rows no longer mean anything and become
    /// `u32::MAX`. The graph is unchanged, so this is as deterministic as the rest.
    pub fn renumber(&mut self, kept: &[u32]) -> Result<(), AnnError> {
        if let Some(i) = kept.windows(2).position(|w| w[0] >= w[1]) {
            return Err(AnnError::Invalid(format!(
                "kept rows must be strictly ascending; {} is followed by {}",
                kept[i],
                kept[i + 1]
            )));
        }
        if kept.len() > u32::MAX as usize {
            return Err(AnnError::Invalid(
                "more kept rows than u32 row numbers".into(),
            ));
        }
        let mut live = BTreeMap::new();
        for (new, old) in kept.iter().enumerate() {
            if let Some(&node) = self.live.get(old) {
                live.insert(new as u32, node);
            }
        }
        if live.len() != self.live.len() {
            let lost = self
                .live
                .keys()
                .find(|row| kept.binary_search(row).is_err())
                .copied()
                .unwrap_or_default();
            return Err(AnnError::Invalid(format!(
                "live row {lost} is not among the kept rows; delete it first"
            )));
        }
        for (node, row) in self.rows.iter_mut().enumerate() {
            if self.deleted[node] {
                *row = NO_ROW;
            }
        }
        for (&row, &node) in &live {
            self.rows[node as usize] = row;
        }
        self.live = live;
        Ok(())
    }

    /// Live nodes that a walk of layer 0 from the entry point does not reach. Searches still
    /// return them (by the scan after an exhausted search), but only then; a count that grows
    /// is another reason to rebuild.
    #[must_use]
    pub fn unreachable(&self) -> usize {
        let Some(entry) = self.entry else {
            return 0;
        };
        let mut seen = vec![false; self.rows.len()];
        let mut stack = vec![entry];
        seen[entry as usize] = true;
        while let Some(node) = stack.pop() {
            for &n in self.links(node, 0) {
                if !seen[n as usize] {
                    seen[n as usize] = true;
                    stack.push(n);
                }
            }
        }
        self.live
            .values()
            .filter(|&&node| !seen[node as usize])
            .count()
    }

    /// The length of the serialized form.
    #[must_use]
    pub fn serialized_len(&self) -> usize {
        let n = self.rows.len();
        let pad = (4 - (2 * n) % 4) % 4;
        HEADER_BYTES
            + 4 * n
            + 2 * n
            + pad
            + self.vectors.len() * 4
            + self.links0.len() * 4
            + self.upper.len() * 4
            + 4
    }

    /// The serialized form (module documentation, "Serialized form").
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0; self.serialized_len()];
        self.write_into(&mut out)
            .expect("the buffer has the serialized length");
        out
    }

    /// Writes the serialized form into `out`, which must be exactly [`Hnsw::serialized_len`]
    /// bytes: a caller can serialize straight into its own buffer (a file mapping, a Python
    /// `bytes`) without an intermediate copy.
    pub fn write_into(&self, out: &mut [u8]) -> Result<(), AnnError> {
        let total = self.serialized_len();
        if out.len() != total {
            return Err(AnnError::Invalid(format!(
                "the serialized index is {total} bytes; the buffer has {}",
                out.len()
            )));
        }
        let n = self.rows.len();
        let header = [
            FORMAT_VERSION,
            self.dim as u32,
            self.params.m as u32,
            self.params.ef_construction as u32,
            self.params.ef_search as u32,
            n as u32,
            self.deleted_count as u32,
            self.entry.unwrap_or(NO_NODE),
            (self.upper.len() / (1 + self.params.m)) as u32,
            0,
        ];
        let (head, rest) = out.split_at_mut(HEADER_BYTES);
        head[..8].copy_from_slice(&MAGIC);
        put_le(&mut head[8..48], &header, u32::to_le_bytes);
        head[48..56].copy_from_slice(&(total as u64).to_le_bytes());
        head[56..].fill(0);
        let rest = put_le(rest, &self.rows, u32::to_le_bytes);
        let (levels, rest) = rest.split_at_mut(n);
        levels.copy_from_slice(&self.levels);
        let (flags, rest) = rest.split_at_mut(n);
        for (f, &d) in flags.iter_mut().zip(&self.deleted) {
            *f = u8::from(d);
        }
        let (pad, rest) = rest.split_at_mut((4 - (2 * n) % 4) % 4);
        pad.fill(0);
        let rest = put_le(rest, &self.vectors, f32::to_le_bytes);
        let rest = put_le(rest, &self.links0, u32::to_le_bytes);
        let rest = put_le(rest, &self.upper, u32::to_le_bytes);
        debug_assert_eq!(rest.len(), 4);
        let crc = crc32(&out[..total - 4], 0);
        out[total - 4..].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Loads a serialized index, checking everything listed under "Serialized form".
    pub fn from_bytes(data: &[u8]) -> Result<Self, AnnError> {
        let corrupt = |offset: usize, reason: String| AnnError::Corrupt { offset, reason };
        if data.len() < HEADER_BYTES + 4 {
            return Err(corrupt(
                data.len(),
                format!(
                    "truncated: {} bytes, shorter than the {}-byte header and checksum",
                    data.len(),
                    HEADER_BYTES + 4
                ),
            ));
        }
        if data[..8] != MAGIC {
            return Err(corrupt(0, "not an ANN index (bad magic)".into()));
        }
        let u32_at = |pos: usize| u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4"));
        let u64_at = |pos: usize| u64::from_le_bytes(data[pos..pos + 8].try_into().expect("8"));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(corrupt(
                8,
                format!("version {version}; this build reads version {FORMAT_VERSION}"),
            ));
        }
        let total = u64_at(48);
        if total != data.len() as u64 {
            return Err(corrupt(
                data.len().min(48),
                format!(
                    "truncated or extended: the header says {total} bytes, there are {}",
                    data.len()
                ),
            ));
        }
        let body = data.len() - 4;
        let stored_crc = u32_at(body);
        let crc = crc32(&data[..body], 0);
        if crc != stored_crc {
            return Err(corrupt(
                body,
                format!("checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"),
            ));
        }
        let field = |pos: usize, name: &str, low: usize, high: usize| {
            let v = u32_at(pos) as usize;
            if (low..=high).contains(&v) {
                Ok(v)
            } else {
                Err(corrupt(
                    pos,
                    format!("{name} is {v}, outside {low} ..= {high}"),
                ))
            }
        };
        let dim = field(12, "dim", 1, DIM_MAX)?;
        let m = field(16, "m", M_MIN, M_MAX)?;
        let ef_construction = field(20, "ef_construction", 1, EF_MAX)?;
        let ef_search = field(24, "ef_search", 1, EF_MAX)?;
        let n = field(28, "nodes", 0, NODES_MAX)?;
        let deleted_count = field(32, "deleted", 0, n)?;
        let entry = u32_at(36);
        let blocks = u32_at(40) as usize;
        if u32_at(44) != 0 || u64_at(56) != 0 {
            return Err(corrupt(44, "reserved header bytes are not zero".into()));
        }
        let m0 = 2 * m;
        let pad = (4 - (2 * n) % 4) % 4;
        let expect = (HEADER_BYTES as u128)
            + 6 * n as u128
            + pad as u128
            + 4 * (n as u128) * (dim as u128)
            + 4 * (n as u128) * (1 + m0 as u128)
            + 4 * (blocks as u128) * (1 + m as u128)
            + 4;
        if expect != data.len() as u128 {
            return Err(corrupt(
                28,
                format!(
                    "sizes in the header ({n} nodes of {dim} dimensions, m {m}, {blocks} upper blocks) need {expect} bytes, not {}",
                    data.len()
                ),
            ));
        }
        let mut pos = HEADER_BYTES;
        let rows: Vec<u32> = data[pos..pos + 4 * n]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
            .collect();
        pos += 4 * n;
        let levels_at = pos;
        let levels = data[pos..pos + n].to_vec();
        pos += n;
        let flags_at = pos;
        let flags = &data[pos..pos + n];
        pos += n;
        if data[pos..pos + pad].iter().any(|&b| b != 0) {
            return Err(corrupt(pos, "padding bytes are not zero".into()));
        }
        pos += pad;
        let mut level_sum = 0usize;
        let mut top = 0u8;
        for (i, &level) in levels.iter().enumerate() {
            if level > LEVEL_MAX {
                return Err(corrupt(
                    levels_at + i,
                    format!("node {i} has level {level}, above {LEVEL_MAX}"),
                ));
            }
            level_sum += usize::from(level);
            top = top.max(level);
        }
        if level_sum != blocks {
            return Err(corrupt(
                40,
                format!("upper_blocks is {blocks} but the levels add up to {level_sum}"),
            ));
        }
        let mut deleted = Vec::with_capacity(n);
        for (i, &f) in flags.iter().enumerate() {
            if f > 1 {
                return Err(corrupt(
                    flags_at + i,
                    format!("node {i} has unknown flags {f:#04x}"),
                ));
            }
            deleted.push(f == 1);
        }
        let flagged = deleted.iter().filter(|&&d| d).count();
        if flagged != deleted_count {
            return Err(corrupt(
                32,
                format!("deleted is {deleted_count} but {flagged} nodes are flagged"),
            ));
        }
        let entry = if n == 0 {
            if entry != NO_NODE {
                return Err(corrupt(36, "an empty index has an entry node".into()));
            }
            None
        } else {
            if entry as usize >= n || levels[entry as usize] != top {
                return Err(corrupt(
                    36,
                    format!("entry {entry} is not a node on the highest level {top}"),
                ));
            }
            Some(entry)
        };
        let vectors_at = pos;
        let vectors: Vec<f32> = data[pos..pos + 4 * n * dim]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
            .collect();
        if let Some(i) = vectors.iter().position(|x| !x.is_finite()) {
            return Err(corrupt(
                vectors_at + 4 * i,
                format!("node {} has a NaN or infinite component", i / dim),
            ));
        }
        pos += 4 * n * dim;
        let links_at = pos;
        let upper_at = links_at + 4 * n * (1 + m0);
        let u32s = |bytes: &[u8]| -> Vec<u32> {
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
                .collect()
        };
        let links0 = u32s(&data[links_at..upper_at]);
        let upper = u32s(&data[upper_at..body]);
        let mut upper_start = Vec::with_capacity(n);
        let mut next = 0usize;
        for &level in &levels {
            upper_start.push(next);
            next += usize::from(level) * (1 + m);
        }
        let mut live = BTreeMap::new();
        for (node, (&row, &d)) in rows.iter().zip(&deleted).enumerate() {
            if !d && live.insert(row, node as u32).is_some() {
                return Err(corrupt(
                    HEADER_BYTES + 4 * node,
                    format!("row {row} has two live nodes"),
                ));
            }
        }
        let index = Hnsw {
            dim,
            params: Params {
                m,
                ef_construction,
                ef_search,
            },
            vectors,
            rows,
            levels,
            deleted,
            deleted_count,
            links0,
            upper_start,
            upper,
            entry,
            live,
            pool: Mutex::new(Vec::new()),
        };
        index.check_links(links_at)?;
        Ok(index)
    }

    /// Every list: count within capacity, zeros after it, neighbours other existing nodes on
    /// the layer, none repeated. `links_at` is where layer 0 starts in the serialized form.
    fn check_links(&self, links_at: usize) -> Result<(), AnnError> {
        let n = self.rows.len();
        let mut seen = vec![u64::MAX; n];
        let mut list_id = 0u64;
        for node in 0..n as u32 {
            for layer in 0..=self.levels[node as usize] {
                let (store, base, capacity) = if layer == 0 {
                    (&self.links0, links_at, self.m0())
                } else {
                    (&self.upper, links_at + 4 * self.links0.len(), self.params.m)
                };
                let start = self.list_start(node, layer);
                let at = |slot: usize| base + 4 * (start + slot);
                let count = store[start] as usize;
                if count > capacity {
                    return Err(AnnError::Corrupt {
                        offset: at(0),
                        reason: format!(
                            "node {node} has {count} links on layer {layer}, more than {capacity}"
                        ),
                    });
                }
                for slot in 1..=capacity {
                    let v = store[start + slot];
                    let bad = if slot > count {
                        (v != 0).then(|| "a nonzero unused link slot".to_string())
                    } else if v as usize >= n || v == node {
                        Some(format!("link to {v}, not another node"))
                    } else if self.levels[v as usize] < layer {
                        Some(format!("link to {v}, which is not on layer {layer}"))
                    } else if seen[v as usize] == list_id {
                        Some(format!("link to {v} repeated"))
                    } else {
                        seen[v as usize] = list_id;
                        None
                    };
                    if let Some(why) = bad {
                        return Err(AnnError::Corrupt {
                            offset: at(slot),
                            reason: format!("node {node}, layer {layer}: {why}"),
                        });
                    }
                }
                list_id += 1;
            }
        }
        Ok(())
    }
}
