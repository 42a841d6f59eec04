//! Binding of `mnemos_core::msgpack`: log event payloads decoded to Python objects, a batch
//! per call, for replay.
//!
//! Python reference: `mnemos.events.decode_event` (`msgpack.unpackb(payload, raw=False)`,
//! then a check that the result is a map with a str `"t"`). Every payload whose tokens are
//! nil, booleans, integers, floats, UTF-8 strings, binaries, arrays and maps with str or bytes
//! keys decodes here to an equal value; anything else (ext values, invalid UTF-8, nesting
//! deeper than `DEPTH_MAX`, truncated or trailing bytes, a value that is not an event) is left
//! to the reference, which gives the same value or raises the same error as it always did.

use std::convert::Infallible;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyMemoryView, PyString};

use crate::error::Error;
use crate::wal::RECORD_ENTRY_BYTES;
use mnemos_core::msgpack::{Reader, Token};

/// Nesting past this depth is left to the reference; events nest far less (FORMAT.md
/// "Limits": metadata at most 32 levels inside an event map).
const DEPTH_MAX: usize = 64;
/// Strings up to this many bytes are made once per call and shared: map keys, event types,
/// namespaces and kinds repeat in every event. Immutable, so sharing changes no value, and a
/// shared string keeps its hash, which every dict insert of a key needs.
const SHARED_STR_BYTES: usize = 24;
/// Slots in the table of shared strings (a power of two). Direct-mapped: a string evicts
/// the one in its slot, so unique short values (ids) cost a slot each, never memory.
const SHARED_SLOTS: usize = 512;

/// A payload the reference decodes instead; never raised.
struct Unsupported;

impl From<PyErr> for Unsupported {
    // A Python error while building (MemoryError, say) is left to the reference to raise.
    fn from(_: PyErr) -> Self {
        Unsupported
    }
}

impl From<Infallible> for Unsupported {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

/// One slot of the shared-string table: the string's length and bytes, and the string.
type Shared<'py> = Option<(usize, [u8; SHARED_STR_BYTES], Bound<'py, PyString>)>;

struct Builder<'py> {
    py: Python<'py>,
    shared: Vec<Shared<'py>>,
}

/// FNV-1a: short keys, and only a slot to pick.
fn slot(bytes: &[u8]) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    hash as usize % SHARED_SLOTS
}

impl<'py> Builder<'py> {
    fn new(py: Python<'py>) -> Self {
        Builder {
            py,
            shared: vec![None; SHARED_SLOTS],
        }
    }

    fn string(&mut self, bytes: &[u8]) -> Result<Bound<'py, PyAny>, Unsupported> {
        if bytes.len() > SHARED_STR_BYTES {
            let text = std::str::from_utf8(bytes).map_err(|_| Unsupported)?;
            return Ok(PyString::new(self.py, text).into_any());
        }
        let entry = &mut self.shared[slot(bytes)];
        if let Some((len, key, s)) = entry {
            if key[..*len] == *bytes {
                return Ok(s.clone().into_any());
            }
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Unsupported)?;
        let s = PyString::new(self.py, text);
        let mut key = [0u8; SHARED_STR_BYTES];
        key[..bytes.len()].copy_from_slice(bytes);
        *entry = Some((bytes.len(), key, s.clone()));
        Ok(s.into_any())
    }

    fn value(
        &mut self,
        reader: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Unsupported> {
        let py = self.py;
        let token = reader.next_token().map_err(|_| Unsupported)?;
        Ok(match token {
            Token::Nil => py.None().into_bound(py),
            Token::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Token::Int(i) => i.into_pyobject(py)?.into_any(),
            Token::UInt(u) => u.into_pyobject(py)?.into_any(),
            // msgpack widens a float32 to a double exactly as `as f64` does.
            Token::F32(f) => PyFloat::new(py, f64::from(f)).into_any(),
            Token::F64(f) => PyFloat::new(py, f).into_any(),
            Token::Str(bytes) => self.string(bytes)?,
            Token::Bin(bytes) => PyBytes::new(py, bytes).into_any(),
            Token::Array(n) => {
                // Each item takes at least one byte: a longer claim is a truncated payload.
                if depth >= DEPTH_MAX || n as usize > reader.remaining() {
                    return Err(Unsupported);
                }
                let list = PyList::empty(py);
                for _ in 0..n {
                    list.append(self.value(reader, depth + 1)?)?;
                }
                list.into_any()
            }
            Token::Map(n) => self.map(reader, n, depth)?.into_any(),
            Token::Ext(..) => return Err(Unsupported),
        })
    }

    fn map(
        &mut self,
        reader: &mut Reader<'_>,
        n: u32,
        depth: usize,
    ) -> Result<Bound<'py, PyDict>, Unsupported> {
        if depth >= DEPTH_MAX || (n as usize).saturating_mul(2) > reader.remaining() {
            return Err(Unsupported);
        }
        let dict = PyDict::new(self.py);
        for _ in 0..n {
            let key = self.value(reader, depth + 1)?;
            // msgpack's strict_map_key (its default): only str and bytes keys.
            if !(key.is_instance_of::<PyString>() || key.is_instance_of::<PyBytes>()) {
                return Err(Unsupported);
            }
            let value = self.value(reader, depth + 1)?;
            // A repeated key keeps its last value, as in msgpack.
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    /// One payload's event map, if the whole payload is one map with a str "t".
    fn event(&mut self, payload: &[u8]) -> Result<Bound<'py, PyDict>, Unsupported> {
        let mut reader = Reader::new(payload);
        let Token::Map(n) = reader.next_token().map_err(|_| Unsupported)? else {
            return Err(Unsupported);
        };
        let event = self.map(&mut reader, n, 0)?;
        if reader.remaining() != 0 {
            return Err(Unsupported);
        }
        let t = self.string(b"t")?;
        match event.get_item(t)? {
            Some(t) if t.is_instance_of::<PyString>() => Ok(event),
            _ => Err(Unsupported),
        }
    }
}

/// Whether nothing can write into `data` through Python while we read it: `bytes`, or a
/// read-only mmap, or a memoryview of either. Building objects may run a finalizer, and so
/// any Python code, in the middle of a decode; a read-only view of a bytearray is no guard.
fn immutable(py: Python<'_>, data: &Bound<'_, PyAny>, readonly: bool) -> PyResult<bool> {
    let exporter = match data.cast::<PyMemoryView>() {
        Ok(view) => view.getattr("obj")?,
        Err(_) => data.clone(),
    };
    if exporter.is_exact_instance_of::<PyBytes>() {
        return Ok(true);
    }
    let mmap = py.import("mmap")?.getattr("mmap")?;
    Ok(readonly && exporter.is_instance(&mmap)?)
}

/// Decodes the payloads of records of a `scan_records` result: `data` is the scanned buffer
/// (bytes, a read-only mmap, or a C-contiguous memoryview of either) and `records` the scan's
/// packed records, or a run of them.
///
/// Returns (events, left): `events[i]` is record `i`'s event, equal to what
/// `mnemos.events.decode_event` returns for its payload, or None where this decoder leaves
/// the payload to `decode_event` (see the module documentation); `left` lists those `i`.
/// Holds the GIL: it builds Python objects.
#[pyfunction]
#[pyo3(signature = (data, records, /))]
fn decode_events<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    records: &[u8],
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let buffer = PyUntypedBuffer::get(data)?;
    if !buffer.is_c_contiguous() || !immutable(py, data, buffer.readonly())? {
        return Err(Error::Arg(
            "decode_events() needs bytes, a read-only mmap or a C-contiguous memoryview of \
             either; pass bytes(data)"
                .into(),
        )
        .into());
    }
    if !records.len().is_multiple_of(RECORD_ENTRY_BYTES) {
        return Err(Error::Arg(format!(
            "decode_events() needs scan_records' packed records ({RECORD_ENTRY_BYTES} bytes \
             each), not {} bytes",
            records.len()
        ))
        .into());
    }
    let (ptr, len) = (buffer.buf_ptr() as *const u8, buffer.len_bytes());
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: as in `crc32` (lib.rs): `buffer` holds the export until it is released
        // below, and it is exactly `len` contiguous bytes at `ptr`. The exporter is bytes or
        // a read-only mmap (`immutable`), so no Python code, not even a finalizer run while
        // we build objects, can write to it. (Another process could write the mapped file:
        // the log maps only sealed segments, which are never written again.)
        unsafe { std::slice::from_raw_parts(ptr, len) }
    };
    let mut builder = Builder::new(py);
    let events = PyList::empty(py);
    let mut left = Vec::new();
    let result = (|| -> PyResult<()> {
        for (i, entry) in records.chunks_exact(RECORD_ENTRY_BYTES).enumerate() {
            let field = |at: usize| {
                let raw = u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
                usize::try_from(raw).unwrap_or(usize::MAX)
            };
            let (offset, n) = (field(16), field(24));
            let Some(payload) = offset.checked_add(n).and_then(|end| bytes.get(offset..end)) else {
                return Err(Error::Arg(format!(
                    "decode_events(): record {i} lies outside the buffer; pass the buffer \
                     that was scanned"
                ))
                .into());
            };
            match builder.event(payload) {
                Ok(event) => events.append(event)?,
                Err(Unsupported) => {
                    events.append(py.None())?;
                    left.push(i);
                }
            }
        }
        Ok(())
    })();
    buffer.release(py);
    result.map(|()| (events, left))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_events, m)?)?;
    Ok(())
}
