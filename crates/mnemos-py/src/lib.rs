//! `mnemos._core`: the thin PyO3 binding over `mnemos-core`.
//!
//! Bytes, integers, paths and float32 arrays cross this boundary, and the log events
//! `decode_events` builds as Python objects; Rust keeps no Python objects past a call. Each
//! function here has a Python reference in the `mnemos` package with the same results; the
//! typed surface is `mnemos/_core.pyi`.

mod ann;
mod error;
mod events;
mod gil;
mod kernels;
mod wal;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;

use crate::error::Error;
use crate::gil::without_gil;

/// CRC-32 of `data`, continuing from `value`; the same result as `zlib.crc32(data, value)`.
///
/// `data` may be any C-contiguous object supporting the buffer protocol (bytes, bytearray,
/// memoryview, mmap, numpy array); its raw bytes are hashed without copying, with the GIL
/// released.
#[pyfunction]
#[pyo3(signature = (data, value = 0, /))]
fn crc32(py: Python<'_>, data: &Bound<'_, PyAny>, value: u32) -> PyResult<u32> {
    // Untyped, not `PyBuffer<u8>`: the typed view rejects any item format other than bytes, and a
    // float32 array must hash as its raw bytes. Objects without the buffer protocol raise
    // TypeError here.
    let buffer = PyUntypedBuffer::get(data)?;
    if !buffer.is_c_contiguous() {
        return Err(Error::Arg(
            "crc32() needs a C-contiguous buffer; pass bytes(data) or numpy.ascontiguousarray(data)"
                .into(),
        )
        .into());
    }
    let (ptr, len) = (buffer.buf_ptr() as usize, buffer.len_bytes());
    let crc = without_gil(py, move || {
        let bytes: &[u8] = if len == 0 {
            // An empty export may carry a null pointer, which `from_raw_parts` forbids.
            &[]
        } else {
            // SAFETY: `buffer` is alive until after this closure returns, so the export stays
            // held: the exporter may not free, move or resize the memory (a bytearray refuses to
            // resize, an mmap to close, while exported). It is C-contiguous, so it is exactly
            // `len` bytes starting at `ptr`, and u8 has no alignment requirement. Another thread
            // may still write into a mutable exporter while we read; as with `zlib.crc32`, which
            // also drops the GIL, the checksum is then of no particular snapshot.
            unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
        };
        mnemos_core::crc32(bytes, value)
    });
    buffer.release(py);
    Ok(crc)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(crc32, m)?)?;
    ann::register(m)?;
    events::register(m)?;
    kernels::register(m)?;
    wal::register(m)?;
    Ok(())
}
