//! The HNSW index against brute force: recall, deletes and masks honoured, and determinism down
//! to the serialized bytes (a golden checksum pins them across machines); damaged bytes are
//! refused, never loaded.

use mnemos_core::ann::{
    dot, dot_portable, level_for, mix64, AnnError, Hit, Hnsw, Params, DOT_LANES, HEADER_BYTES,
};
use mnemos_core::crc32;

/// Deterministic test data without transcendental functions (whose last bit may differ between
/// math libraries): uniform values from integer bits, exactly representable.
struct Gen(u64);

impl Gen {
    fn unit(&mut self) -> f32 {
        self.0 += 1;
        // 24 random bits -> [-1, 1), exact in f32.
        ((mix64(self.0) >> 40) as f32) / (1u32 << 23) as f32 - 1.0
    }

    fn index(&mut self, n: u64) -> usize {
        self.0 += 1;
        (mix64(self.0) % n) as usize
    }
}

/// `n` rows of `dim` floats around `clusters` centres (noise half the spread of the centres).
fn clustered(seed: u64, n: usize, dim: usize, clusters: usize) -> Vec<f32> {
    let mut g = Gen(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| g.unit()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = g.index(clusters as u64);
        for j in 0..dim {
            out.push(centres[c * dim + j] + 0.5 * g.unit());
        }
    }
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// The exact best `k` of `rows` (index into `data`) for `query`, best first, ties by row.
fn brute(data: &[f32], dim: usize, rows: &[u32], query: &[f32], k: usize) -> Vec<u32> {
    let mut scored: Vec<(f64, u32)> = rows
        .iter()
        .map(|&r| {
            let v = &data[r as usize * dim..(r as usize + 1) * dim];
            (cosine(v, query), r)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, r)| r).collect()
}

fn build(data: &[f32], dim: usize, params: Params) -> Hnsw {
    let n = data.len() / dim;
    let mut index = Hnsw::new(dim, params).unwrap();
    let rows: Vec<u32> = (0..n as u32).collect();
    let keys: Vec<u64> = (0..n as u64).map(|r| r * 7 + 3).collect();
    index.insert_batch(&rows, &keys, data).unwrap();
    index
}

fn small_params() -> Params {
    Params {
        m: 8,
        ef_construction: 64,
        ef_search: 32,
    }
}

#[test]
fn mix64_is_splitmix64_and_levels_are_geometric() {
    // The first outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
    assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
    assert_eq!(mix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    // Golden levels: these must never change, or old inserts would replay differently.
    let levels: Vec<u8> = (0..16).map(|k| level_for(k, 16)).collect();
    // (Checked against an independent Python implementation of the same integer rule.)
    assert_eq!(levels, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!((level_for(7326, 16), level_for(21694, 16)), (3, 3));
    let m2: Vec<u8> = (0..8).map(|k| level_for(k, 2)).collect();
    assert_eq!(m2, [0, 0, 0, 3, 1, 1, 0, 1]);
    // P(level >= l) = m^-l.
    let n = 200_000u64;
    for m in [2usize, 16] {
        let mut at_least = [0u64; 4];
        for key in 0..n {
            let level = level_for(key, m) as usize;
            for (l, count) in at_least.iter_mut().enumerate() {
                if level >= l {
                    *count += 1;
                }
            }
        }
        for (l, &count) in at_least.iter().enumerate().skip(1) {
            let expected = n as f64 / (m as f64).powi(l as i32);
            if expected >= 100.0 {
                let ratio = count as f64 / expected;
                assert!((0.9..1.1).contains(&ratio), "m {m} level {l}: {ratio}");
            }
        }
    }
}

#[test]
fn dot_is_the_same_bits_on_every_code_path() {
    let mut g = Gen(11);
    for len in (0..3 * DOT_LANES + 2).chain([384, 1000]) {
        let a: Vec<f32> = (0..len).map(|_| g.unit()).collect();
        let b: Vec<f32> = (0..len).map(|_| g.unit()).collect();
        let got = dot(&a, &b);
        assert_eq!(
            got.to_bits(),
            dot_portable(&a, &b).to_bits(),
            "length {len}"
        );
        // The documented order: lane i % DOT_LANES, then a pairwise tree over the lanes.
        let mut lanes = [0f32; DOT_LANES];
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            lanes[i % DOT_LANES] += x * y;
        }
        let mut width = DOT_LANES;
        while width > 1 {
            width /= 2;
            for j in 0..width {
                lanes[j] += lanes[j + width];
            }
        }
        assert_eq!(got.to_bits(), lanes[0].to_bits(), "length {len}");
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        assert!((f64::from(got) - exact).abs() < 1e-4, "length {len}");
    }
}

#[test]
fn recall_at_10_against_brute_force() {
    let (dim, n) = (32, 3000);
    let data = clustered(1, n, dim, 20);
    let queries = clustered(2, 50, dim, 20);
    let index = build(&data, dim, Params::default());
    let rows: Vec<u32> = (0..n as u32).collect();
    let mut hits = 0;
    for q in queries.chunks_exact(dim) {
        let truth = brute(&data, dim, &rows, q, 10);
        let found = index.search(q, 10, None, None).unwrap();
        assert_eq!(found.len(), 10);
        assert!(found.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
        for (row, score) in &found {
            let v = &data[*row as usize * dim..(*row as usize + 1) * dim];
            assert!((f64::from(*score) - cosine(v, q)).abs() < 1e-5);
        }
        hits += found.iter().filter(|(r, _)| truth.contains(r)).count();
    }
    let recall = hits as f64 / (10 * queries.len() / dim) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    assert_eq!(index.unreachable(), 0);
}

/// One fixed sequence: insert rows 0..n/2, delete those divisible by 5, insert the rest, delete
/// those divisible by 5, insert row 10 again (with row 0's vector). The inserts are grouped into
/// batches cut at `splits` (a batch of one is a single insert): the grouping must not matter.
fn scripted(data: &[f32], dim: usize, splits: &[usize]) -> Hnsw {
    let n = data.len() / dim;
    let mut index = Hnsw::new(dim, small_params()).unwrap();
    for (low, high) in [(0, n / 2), (n / 2, n)] {
        let mut cuts: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|&c| low < c && c < high)
            .collect();
        cuts.push(high);
        let mut start = low;
        for end in cuts {
            if end == start + 1 {
                let r = start as u32;
                index
                    .insert(r, u64::from(r) * 7 + 3, &data[start * dim..end * dim])
                    .unwrap();
            } else {
                let rows: Vec<u32> = (start as u32..end as u32).collect();
                let keys: Vec<u64> = rows.iter().map(|&r| u64::from(r) * 7 + 3).collect();
                index
                    .insert_batch(&rows, &keys, &data[start * dim..end * dim])
                    .unwrap();
            }
            start = end;
        }
        for r in (low..high).filter(|r| r % 5 == 0) {
            index.delete(r as u32).unwrap();
        }
    }
    index.insert(10, 99, &data[..dim]).unwrap();
    index
}

/// Equal bytes, or a panic naming the first difference (not a dump of both).
fn same_bytes(a: &[u8], b: &[u8], what: &str) {
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("{what}: first difference at byte {i} of {}", a.len());
    }
    assert_eq!(a.len(), b.len(), "{what}: lengths");
}

#[test]
fn the_same_inserts_and_deletes_give_the_same_bytes_however_batched() {
    let (dim, n) = (16, 400);
    let data = clustered(3, n, dim, 8);
    let one = scripted(&data, dim, &[]);
    let bytes = one.to_bytes();
    for splits in [&[1, 2, 3][..], &[100, 101, 250], &[399]] {
        same_bytes(&scripted(&data, dim, splits).to_bytes(), &bytes, "batched");
    }
    let single: Vec<usize> = (1..n).collect();
    same_bytes(
        &scripted(&data, dim, &single).to_bytes(),
        &bytes,
        "one by one",
    );
    // The golden checksum pins the graph across machines and releases: a change here means
    // indexes built by another machine or version would differ (a format/algorithm change).
    assert_eq!(crc32(&bytes, 0), 0x2144_DF1C, "golden index checksum");
    assert_eq!((one.len(), one.deleted(), one.nodes()), (321, 80, 401));
}

#[test]
fn deleted_rows_are_never_returned_and_live_rows_all_are() {
    let (dim, n) = (16, 500);
    let data = clustered(4, n, dim, 10);
    let mut index = build(&data, dim, small_params());
    let mut live: Vec<u32> = (0..n as u32).collect();
    for r in (0..n as u32).filter(|r| r % 3 != 0) {
        index.delete(r).unwrap();
        live.retain(|&x| x != r);
    }
    assert_eq!((index.len(), index.deleted()), (live.len(), n - live.len()));
    for q in clustered(5, 20, dim, 10).chunks_exact(dim) {
        let found = index.search(q, 10, None, None).unwrap();
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|(r, _)| r % 3 == 0));
        let all = index.search(q, n, Some(n), None).unwrap();
        let mut rows: Vec<u32> = all.iter().map(|h| h.0).collect();
        assert_eq!(rows, brute(&data, dim, &live, q, n), "k = n is exact");
        rows.sort_unstable();
        assert_eq!(rows, live);
    }
    assert_eq!(
        index.delete(1),
        Err(AnnError::RowNotLive(1)),
        "a deleted row is not live"
    );
}

#[test]
fn a_row_inserted_again_returns_its_new_vector_once() {
    let (dim, n) = (8, 200);
    let data = clustered(6, n, dim, 4);
    let mut index = build(&data, dim, small_params());
    let far: Vec<f32> = (0..dim).map(|j| if j == 0 { -50.0 } else { 0.0 }).collect();
    assert_eq!(
        index.insert(7, 1, &far),
        Err(AnnError::RowLive(7)),
        "a live row cannot be inserted"
    );
    index.delete(7).unwrap();
    index.insert(7, 1, &far).unwrap();
    let found = index.search(&far, n, Some(n), None).unwrap();
    assert_eq!(found[0].0, 7);
    assert!((found[0].1 - 1.0).abs() < 1e-6);
    assert_eq!(found.iter().filter(|h| h.0 == 7).count(), 1);
    assert_eq!((index.len(), index.nodes(), index.deleted()), (n, n + 1, 1));
}

#[test]
fn renumbering_follows_compaction() {
    let (dim, n) = (8, 300);
    let data = clustered(18, n, dim, 4);
    let mut index = build(&data, dim, small_params());
    for r in (0..n as u32).filter(|r| r % 4 == 1) {
        index.delete(r).unwrap();
    }
    let kept: Vec<u32> = (0..n as u32).filter(|r| r % 4 != 1).collect();
    let queries = clustered(19, 10, dim, 4);
    let before: Vec<Vec<Hit>> = queries
        .chunks_exact(dim)
        .map(|q| index.search(q, 10, None, None).unwrap())
        .collect();
    assert!(index.renumber(&[0, 2, 1]).is_err(), "not ascending");
    assert!(index.renumber(&kept[1..]).is_err(), "a live row dropped");
    index.renumber(&kept).unwrap();
    for (q, old) in queries.chunks_exact(dim).zip(&before) {
        let new = index.search(q, 10, None, None).unwrap();
        let mapped: Vec<Hit> = old
            .iter()
            .map(|&(r, s)| (kept.binary_search(&r).unwrap() as u32, s))
            .collect();
        assert_eq!(new, mapped);
    }
    assert_eq!((index.len(), index.deleted()), (kept.len(), n - kept.len()));
    assert!(index.contains(kept.len() as u32 - 1) && !index.contains(kept.len() as u32));
    let bytes = index.to_bytes();
    same_bytes(
        &Hnsw::from_bytes(&bytes).unwrap().to_bytes(),
        &bytes,
        "renumbered",
    );
    // A new row after the renumbering is just another row.
    index.insert(kept.len() as u32, 5, &data[..dim]).unwrap();
}

#[test]
fn masks_limit_results_even_when_very_selective() {
    let (dim, n) = (16, 600);
    let data = clustered(7, n, dim, 10);
    let index = build(&data, dim, small_params());
    for (keep_every, mask_len) in [(2usize, n), (97, n), (7, n / 2)] {
        let mask: Vec<u8> = (0..mask_len)
            .map(|r| u8::from(r % keep_every == 0))
            .collect();
        let allowed: Vec<u32> = (0..mask_len as u32)
            .filter(|&r| mask[r as usize] == 1)
            .collect();
        for q in clustered(8, 10, dim, 10).chunks_exact(dim) {
            let found = index.search(q, 10, None, Some(&mask)).unwrap();
            assert_eq!(found.len(), allowed.len().min(10));
            assert!(found.iter().all(|(r, _)| allowed.contains(r)));
            if allowed.len() <= 10 {
                let rows: Vec<u32> = found.iter().map(|h| h.0).collect();
                assert_eq!(rows, brute(&data, dim, &allowed, q, 10));
            }
        }
    }
    let none = vec![0u8; n];
    assert!(index
        .search(&data[..dim], 5, None, Some(&none))
        .unwrap()
        .is_empty());
}

/// With m = 2 some nodes lose every incoming link. A search that exhausts what it can reach
/// before it has `ef` results scans the rest, so those rows are still returned.
#[test]
fn an_exhausted_search_scans_what_it_could_not_reach() {
    let (dim, n) = (8, 400);
    let data = clustered(16, n, dim, 5);
    let params = Params {
        m: 2,
        ef_construction: 4,
        ef_search: 4,
    };
    let index = build(&data, dim, params);
    assert!(index.unreachable() >= 2, "the case needs unreachable nodes");
    let rows: Vec<u32> = (0..n as u32).collect();
    for q in clustered(17, 5, dim, 5).chunks_exact(dim) {
        // Not a direct scan (n > ef), and the walk cannot reach n - 1 nodes.
        let found = index.search(q, n - 1, Some(n - 1), None).unwrap();
        let got: Vec<u32> = found.iter().map(|h| h.0).collect();
        assert_eq!(got, brute(&data, dim, &rows, q, n - 1));
    }
}

#[test]
fn batch_search_does_not_depend_on_threads() {
    let (dim, n) = (16, 800);
    let data = clustered(9, n, dim, 10);
    let index = build(&data, dim, small_params());
    let queries = clustered(10, 64, dim, 10);
    let one = index.search_batch(&queries, 10, None, None, 1).unwrap();
    for threads in [0, 2, 3, 64] {
        let many = index
            .search_batch(&queries, 10, None, None, threads)
            .unwrap();
        let bits = |r: &Vec<Vec<(u32, f32)>>| -> Vec<Vec<(u32, u32)>> {
            r.iter()
                .map(|h| h.iter().map(|&(row, s)| (row, s.to_bits())).collect())
                .collect()
        };
        assert_eq!(bits(&many), bits(&one), "threads {threads}");
    }
    for (q, hits) in queries.chunks_exact(dim).zip(&one) {
        assert_eq!(&index.search(q, 10, None, None).unwrap(), hits);
    }
}

#[test]
fn bytes_round_trip_to_the_same_index() {
    let (dim, n) = (16, 300);
    let data = clustered(12, n, dim, 6);
    let index = scripted(&data, dim, &[150]);
    let bytes = index.to_bytes();
    let loaded = Hnsw::from_bytes(&bytes).unwrap();
    same_bytes(&loaded.to_bytes(), &bytes, "reloaded");
    assert_eq!(loaded.params(), index.params());
    for q in clustered(13, 10, dim, 6).chunks_exact(dim) {
        assert_eq!(
            loaded.search(q, 10, None, None).unwrap(),
            index.search(q, 10, None, None).unwrap()
        );
    }
    let empty = Hnsw::new(dim, Params::default()).unwrap();
    let loaded = Hnsw::from_bytes(&empty.to_bytes()).unwrap();
    assert!(loaded.is_empty());
    assert!(loaded
        .search(&data[..dim], 3, None, None)
        .unwrap()
        .is_empty());
}

#[test]
fn every_bit_flip_and_truncation_is_refused() {
    let (dim, n) = (4, 24);
    let data = clustered(14, n, dim, 3);
    let mut index = build(
        &data,
        dim,
        Params {
            m: 2,
            ef_construction: 8,
            ef_search: 8,
        },
    );
    index.delete(3).unwrap();
    let bytes = index.to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(Hnsw::from_bytes(&damaged), Err(AnnError::Corrupt { .. })),
            "bit {bit} flipped"
        );
    }
    for len in 0..bytes.len() {
        assert!(matches!(
            Hnsw::from_bytes(&bytes[..len]),
            Err(AnnError::Corrupt { .. })
        ));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Hnsw::from_bytes(&longer).is_err());
}

/// Damage that a checksum cannot catch (the bytes were written wrong, then checksummed) is
/// still refused by the structural checks.
#[test]
fn structural_damage_with_a_valid_checksum_is_refused() {
    let (dim, n) = (4, 30);
    let data = clustered(15, n, dim, 3);
    let index = build(&data, dim, small_params());
    let bytes = index.to_bytes();
    let reseal = |mut b: Vec<u8>| {
        let body = b.len() - 4;
        let crc = crc32(&b[..body], 0);
        b[body..].copy_from_slice(&crc.to_le_bytes());
        b
    };
    let reason = |b: Vec<u8>| match Hnsw::from_bytes(&reseal(b)) {
        Err(AnnError::Corrupt { reason, .. }) => reason,
        other => panic!("loaded damaged bytes: {other:?}"),
    };
    let pad = (4 - (2 * n) % 4) % 4;
    let links0 = HEADER_BYTES + 6 * n + pad + 4 * n * dim;
    let mut b = bytes.clone();
    b[links0 + 4..links0 + 8].copy_from_slice(&0u32.to_le_bytes()); // node 0 links to itself
    assert!(reason(b).contains("not another node"));
    let mut b = bytes.clone();
    b[links0..links0 + 4].copy_from_slice(&99u32.to_le_bytes());
    assert!(reason(b).contains("more than"));
    let mut b = bytes.clone();
    b[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&5u32.to_le_bytes()); // row 0 := row 5
    assert!(reason(b).contains("two live nodes"));
    let mut b = bytes.clone();
    let v = HEADER_BYTES + 6 * n + pad;
    b[v..v + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(reason(b).contains("NaN"));
    let mut b = bytes.clone();
    b[HEADER_BYTES + 4 * n + n] = 2; // unknown flag
    assert!(reason(b).contains("flags"));
    let mut b = bytes;
    b[8] = 2;
    assert!(reason(b).contains("version"));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dim = 4;
    assert!(Hnsw::new(0, Params::default()).is_err());
    assert!(Hnsw::new(5000, Params::default()).is_err());
    for params in [
        Params {
            m: 1,
            ..Params::default()
        },
        Params {
            m: 129,
            ..Params::default()
        },
        Params {
            ef_construction: 0,
            ..Params::default()
        },
        Params {
            ef_search: 100_001,
            ..Params::default()
        },
    ] {
        assert!(matches!(Hnsw::new(dim, params), Err(AnnError::Invalid(_))));
    }
    let mut index = Hnsw::new(dim, Params::default()).unwrap();
    index.insert(1, 1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    let before = index.to_bytes();
    assert!(matches!(
        index.insert(2, 2, &[1.0, 0.0]),
        Err(AnnError::Invalid(_))
    ));
    assert_eq!(
        index.insert(2, 2, &[1.0, f32::NAN, 0.0, 0.0]),
        Err(AnnError::NotFinite { position: 1 })
    );
    assert_eq!(index.insert(2, 2, &[0.0; 4]), Err(AnnError::Zero));
    let batch = index.insert_batch(&[2, 3], &[2, 3], &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(
        batch,
        Err(AnnError::Item {
            item: 1,
            error: Box::new(AnnError::Zero)
        })
    );
    assert!(index.insert_batch(&[2, 2], &[2, 3], &[1.0; 8]).is_err());
    assert!(index.insert_batch(&[2], &[2, 3], &[1.0; 4]).is_err());
    same_bytes(&index.to_bytes(), &before, "after failed inserts");
    assert!(index.search(&[0.0; 4], 1, None, None).is_err());
    assert!(index.search(&[1.0; 3], 1, None, None).is_err());
    assert!(index.search(&[1.0; 4], 100_001, None, None).is_err());
    assert!(index.search(&[1.0; 4], 1, Some(0), None).is_err());
    assert!(index.search_batch(&[1.0; 6], 1, None, None, 1).is_err());
    assert!(index.search(&[1.0; 4], 0, None, None).unwrap().is_empty());
    // Tiny and huge (finite) components normalise without overflow or underflow.
    index.insert(5, 5, &[f32::MAX, f32::MAX, 0.0, 0.0]).unwrap();
    index.insert(6, 6, &[1e-45, 0.0, 0.0, 0.0]).unwrap();
    let top = index.search(&[1.0, 1.0, 0.0, 0.0], 1, None, None).unwrap();
    assert_eq!(top[0].0, 5);
}
