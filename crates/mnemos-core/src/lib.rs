//! Pure-Rust core of Mnemos: the byte-level and number-crunching work behind the `mnemos`
//! Python package. No PyO3 here; `crates/mnemos-py` is the thin binding that exposes this crate
//! as `mnemos._core`.
//!
//! The checksum, the write-ahead-log record codec and segment scanner (`wal`), the reader of
//! the events' MessagePack (`msgpack`), the vector kernels (`kernels`) and the approximate
//! index (`ann`). Every public function has a Python reference (stdlib or numpy) in the
//! `mnemos` package that returns the same results, and the test suite runs both (see
//! DESIGN.md, `MNEMOS_BACKEND=python`).

pub mod ann;
pub mod kernels;
pub mod msgpack;
pub mod wal;

/// CRC-32 (IEEE 802.3 / ISO-HDLC: reflected polynomial 0xEDB88320, initial and final XOR
/// 0xFFFFFFFF) of `data`, continuing from `initial`.
///
/// Python reference: `zlib.crc32(data, initial)`. `initial` is a previous *result*, not a raw
/// register value, so checksums chain: `crc32(b, crc32(a, 0)) == crc32(a ++ b, 0)`, and empty
/// `data` returns `initial` unchanged.
#[must_use]
pub fn crc32(data: &[u8], initial: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(initial);
    hasher.update(data);
    hasher.finalize()
}
