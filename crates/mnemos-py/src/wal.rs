//! Binding of `mnemos_core::wal`: record encoding and segment scanning.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::gil::without_gil;
use mnemos_core::wal;

/// One record's bytes and its CRC; the same as `mnemos.wal.encode_record`.
#[pyfunction]
#[pyo3(signature = (salt, seq, prev_crc, txn_index, txn_count, unsynced, payload, /))]
#[allow(clippy::too_many_arguments)]
fn encode_record<'py>(
    py: Python<'py>,
    salt: u32,
    seq: u64,
    prev_crc: u32,
    txn_index: u32,
    txn_count: u32,
    unsynced: u32,
    payload: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, u32)> {
    if payload.len() > u32::MAX as usize {
        return Err(Error::Arg(
            "a record payload must be under 4 GiB; store less in one event".into(),
        )
        .into());
    }
    let mut out = Vec::new();
    let crc = wal::encode_record(
        &mut out, salt, seq, prev_crc, txn_index, txn_count, unsynced, payload,
    );
    Ok((PyBytes::new(py, &out), crc))
}

/// Bytes per committed record in `scan_records`' first result: seq u64, crc u32, 4 zero
/// bytes, payload offset u64, payload length u64, all little-endian.
pub const RECORD_ENTRY_BYTES: usize = 32;

type ScanTuple<'py> = (
    Bound<'py, PyBytes>,
    usize,
    u64,
    u32,
    &'static str,
    Option<usize>,
    String,
);

/// Scans record bytes the way `mnemos.wal.scan_records` does, without the GIL.
///
/// Returns (records, end, seq, crc, status, bad_offset, reason): `records` packs each
/// committed record as RECORD_ENTRY_BYTES bytes; offsets are into `data`; status is "clean",
/// "torn" or "corrupt".
#[pyfunction]
#[pyo3(signature = (data, salt, seq, crc, /))]
fn scan_records<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    salt: u32,
    seq: u64,
    crc: u32,
) -> PyResult<ScanTuple<'py>> {
    let buffer = PyUntypedBuffer::get(data)?;
    if !buffer.is_c_contiguous() {
        return Err(Error::Arg(
            "scan_records() needs a C-contiguous buffer; pass bytes(data)".into(),
        )
        .into());
    }
    let (ptr, len) = (buffer.buf_ptr() as usize, buffer.len_bytes());
    let scan = without_gil(py, move || {
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: as in `crc32` (lib.rs): the export is held by `buffer` until after this
            // closure returns, and it is exactly `len` contiguous bytes at `ptr`.
            unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
        };
        wal::scan(bytes, salt, seq, crc)
    });
    buffer.release(py);
    let mut packed = Vec::with_capacity(scan.records.len() * RECORD_ENTRY_BYTES);
    for r in &scan.records {
        packed.extend_from_slice(&r.seq.to_le_bytes());
        packed.extend_from_slice(&r.crc.to_le_bytes());
        packed.extend_from_slice(&[0u8; 4]);
        packed.extend_from_slice(&(r.offset as u64).to_le_bytes());
        packed.extend_from_slice(&(r.len as u64).to_le_bytes());
    }
    let status = match scan.status {
        wal::Status::Clean => "clean",
        wal::Status::Torn => "torn",
        wal::Status::Corrupt => "corrupt",
    };
    Ok((
        PyBytes::new(py, &packed),
        scan.end,
        scan.seq,
        scan.crc,
        status,
        scan.bad_offset,
        scan.reason,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_record, m)?)?;
    m.add_function(wrap_pyfunction!(scan_records, m)?)?;
    Ok(())
}
