//! A deterministic approximate-nearest-neighbour graph index.
//! Binding of `mnemos_core::ann`: the class `HnswIndex`.
//!
//! The index sits behind a `RwLock`: searches share it, inserts and deletes take it alone, so a
//! writer thread and reader threads wait for each other instead of failing. The lock is only
//! ever taken with the GIL released, inside [`without_gil`], and released before the GIL is
//! taken again: a thread never waits for the lock while holding the GIL, so the two cannot
//! deadlock.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::gil::without_gil;
use mnemos_core::ann::{Hit, Hnsw, Params};

const POISONED: &str =
    "the ANN index was left inconsistent by an earlier internal error; rebuild it";

/// A C-contiguous buffer held for reading in place: where it starts and how many items.
struct Held {
    buffer: PyUntypedBuffer,
    ptr: usize,
    items: usize,
}

impl Held {
    /// `obj`'s buffer if it is C-contiguous, its items are `item_bytes` wide and its format is
    /// one of `formats` (struct-module codes).
    fn get(
        obj: &Bound<'_, PyAny>,
        what: &str,
        formats: &[&[u8]],
        item_bytes: usize,
    ) -> PyResult<Self> {
        let buffer = PyUntypedBuffer::get(obj)?;
        let format = buffer.format().to_bytes();
        if buffer.item_size() != item_bytes || !formats.contains(&format) {
            let (kind, dtype) = if item_bytes == 4 {
                ("float32", "float32")
            } else {
                ("bool or uint8", "uint8")
            };
            return Err(Error::Arg(format!(
                "{what} must be a buffer of {kind}; got format {:?}; pass \
                 numpy.ascontiguousarray({what}, dtype=numpy.{dtype})",
                String::from_utf8_lossy(format)
            ))
            .into());
        }
        if !buffer.is_c_contiguous() {
            return Err(Error::Arg(format!(
                "{what} must be C-contiguous; pass numpy.ascontiguousarray({what})"
            ))
            .into());
        }
        let ptr = buffer.buf_ptr() as usize;
        let items = buffer.item_count();
        if items > 0 && !ptr.is_multiple_of(item_bytes) {
            return Err(
                Error::Arg(format!("{what} is not aligned to its items; pass a copy")).into(),
            );
        }
        Ok(Held { buffer, ptr, items })
    }

    fn floats(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        // Native float32 only; "<f" is native on little-endian hosts.
        let little: &[u8] = if cfg!(target_endian = "little") {
            b"<f"
        } else {
            b"=f"
        };
        Held::get(obj, what, &[b"f", b"@f", b"=f", little], 4)
    }

    fn bytes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        Held::get(
            obj,
            what,
            &[b"?", b"B", b"b", b"c", b"<B", b"=B", b"<?", b"=?"],
            1,
        )
    }
}

/// The float32 items of a held buffer.
///
/// # Safety
///
/// `ptr` and `items` must come from a `Held` float32 buffer that is still held (not released),
/// for the whole lifetime `'a`.
unsafe fn f32s<'a>(ptr: usize, items: usize) -> &'a [f32] {
    if items == 0 {
        // An empty export may carry a null or dangling pointer, which `from_raw_parts` forbids.
        &[]
    } else {
        // SAFETY: as in `crc32` (lib.rs): the caller holds the export, so the exporter may not
        // free, move or resize it; it is C-contiguous, so it is `items` float32 values starting
        // at `ptr`, which `Held::get` checked is aligned. As with numpy releasing the GIL, another
        // thread writing into the array meanwhile makes the values read unspecified.
        unsafe { std::slice::from_raw_parts(ptr as *const f32, items) }
    }
}

/// The bytes of a held one-byte-item buffer.
///
/// # Safety
///
/// As for [`f32s`], for a `Held` buffer of one-byte items.
unsafe fn u8s<'a>(ptr: usize, items: usize) -> &'a [u8] {
    if items == 0 {
        &[]
    } else {
        // SAFETY: as in `f32s`; u8 has no alignment requirement.
        unsafe { std::slice::from_raw_parts(ptr as *const u8, items) }
    }
}

/// A deterministic HNSW index of cosine similarity over rows (see `mnemos_core::ann`).
#[pyclass(frozen, module = "mnemos._core", name = "HnswIndex")]
pub struct HnswIndex {
    inner: RwLock<Hnsw>,
}

impl HnswIndex {
    fn read(&self) -> Result<RwLockReadGuard<'_, Hnsw>, Error> {
        self.inner.read().map_err(|_| Error::Poisoned(POISONED))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Hnsw>, Error> {
        self.inner.write().map_err(|_| Error::Poisoned(POISONED))
    }

    /// Runs `f` on the shared index with the GIL released.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Hnsw) -> T + Send) -> PyResult<T> {
        Ok(without_gil(py, || self.read().map(|index| f(&index)))?)
    }
}

#[pymethods]
impl HnswIndex {
    #[new]
    #[pyo3(signature = (dim, m = Params::default().m, ef_construction = Params::default().ef_construction, ef_search = Params::default().ef_search))]
    fn new(dim: usize, m: usize, ef_construction: usize, ef_search: usize) -> PyResult<Self> {
        let params = Params {
            m,
            ef_construction,
            ef_search,
        };
        let index = Hnsw::new(dim, params).map_err(Error::Ann)?;
        Ok(HnswIndex {
            inner: RwLock::new(index),
        })
    }

    /// Adds `row` with `vector` (float32, `dim` values) at the level `key` gives.
    #[pyo3(signature = (row, key, vector, /))]
    fn insert(
        &self,
        py: Python<'_>,
        row: u32,
        key: u64,
        vector: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let held = Held::floats(vector, "vector")?;
        let (ptr, items) = (held.ptr, held.items);
        let done = without_gil(py, || {
            // SAFETY: `held` keeps the export alive until after this closure returns.
            let vector = unsafe { f32s(ptr, items) };
            self.write()?.insert(row, key, vector).map_err(Error::Ann)
        });
        held.buffer.release(py);
        Ok(done?)
    }

    /// Inserts `rows[i]` with `keys[i]` and row `i` of `vectors` (float32, rows × dim), in
    /// order; every item is checked first, so an error inserts nothing.
    #[pyo3(signature = (rows, keys, vectors, /))]
    fn insert_batch(
        &self,
        py: Python<'_>,
        rows: Vec<u32>,
        keys: Vec<u64>,
        vectors: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let held = Held::floats(vectors, "vectors")?;
        let (ptr, items) = (held.ptr, held.items);
        let done = without_gil(py, || {
            // SAFETY: `held` keeps the export alive until after this closure returns.
            let vectors = unsafe { f32s(ptr, items) };
            self.write()?
                .insert_batch(&rows, &keys, vectors)
                .map_err(Error::Ann)
        });
        held.buffer.release(py);
        Ok(done?)
    }

    /// Marks `row` deleted; InvalidInputError if it has no live entry.
    #[pyo3(signature = (row, /))]
    fn delete(&self, py: Python<'_>, row: u32) -> PyResult<()> {
        Ok(without_gil(py, || {
            self.write()?.delete(row).map_err(Error::Ann)
        })?)
    }

    /// Renumbers rows as the database's compact does: old row `kept[i]` becomes row `i`.
    #[pyo3(signature = (kept, /))]
    fn renumber(&self, py: Python<'_>, kept: Vec<u32>) -> PyResult<()> {
        Ok(without_gil(py, || {
            self.write()?.renumber(&kept).map_err(Error::Ann)
        })?)
    }

    /// For each row of `queries` (float32, n × dim, or one vector), the best `k` live rows as
    /// (row, cosine), best first. `mask` (bool or uint8, one per row) limits the rows returned.
    #[pyo3(signature = (queries, k, ef = None, mask = None, threads = 0))]
    fn search(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
        ef: Option<usize>,
        mask: Option<&Bound<'_, PyAny>>,
        threads: usize,
    ) -> PyResult<Vec<Vec<Hit>>> {
        let queries = Held::floats(queries, "queries")?;
        let mask = mask.map(|m| Held::bytes(m, "mask")).transpose()?;
        let (q_ptr, q_items) = (queries.ptr, queries.items);
        let m = mask.as_ref().map(|m| (m.ptr, m.items));
        let found = without_gil(py, || {
            // SAFETY: `queries` and `mask` keep their exports alive until after this closure.
            let q = unsafe { f32s(q_ptr, q_items) };
            let m = m.map(|(ptr, items)| unsafe { u8s(ptr, items) });
            self.read()?
                .search_batch(q, k, ef, m, threads)
                .map_err(Error::Ann)
        });
        queries.buffer.release(py);
        if let Some(m) = mask {
            m.buffer.release(py);
        }
        Ok(found?)
    }

    /// The serialized index (`mnemos_core::ann`, "Serialized form"), written straight into the
    /// new `bytes` object with the GIL released.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        loop {
            let len = self.with(py, Hnsw::serialized_len)?;
            let mut resized = false;
            let bytes = PyBytes::new_with(py, len, |buf| {
                // The new object is ours alone until returned, so filling it without the GIL
                // is safe. The lock is taken only inside, with the GIL released (module docs).
                without_gil(py, || {
                    let index = self.read()?;
                    if index.serialized_len() == buf.len() {
                        index.write_into(buf).map_err(Error::Ann)
                    } else {
                        resized = true; // an insert came between: measure again
                        Ok(())
                    }
                })
                .map_err(PyErr::from)
            })?;
            if !resized {
                return Ok(bytes);
            }
        }
    }

    /// Bytes in the serialized index: the size of the buffer `write_into` fills.
    fn serialized_len(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::serialized_len)
    }

    /// Writes the serialized index into `buffer` (writable, C-contiguous, exactly
    /// `serialized_len()` bytes; e.g. a memoryview of a file mapping), with the GIL released.
    #[pyo3(signature = (buffer, /))]
    fn write_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        let held = Held::get(buffer, "buffer", &[b"B", b"b", b"c", b"<B", b"=B"], 1)?;
        if held.buffer.readonly() {
            held.buffer.release(py);
            return Err(Error::Arg(
                "write_into() needs a writable buffer; pass a bytearray or a writable memoryview"
                    .into(),
            )
            .into());
        }
        let (ptr, items) = (held.ptr, held.items);
        let done = without_gil(py, || {
            let out: &mut [u8] = if items == 0 {
                &mut []
            } else {
                // SAFETY: as in `f32s`: `held` keeps the export alive until after this closure,
                // C-contiguous, `items` bytes at `ptr`, and writable (checked above). The exporter
                // may be read or written by another thread meanwhile, as with any buffer handed
                // to code that releases the GIL; the bytes are then unspecified.
                unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, items) }
            };
            self.read()?.write_into(out).map_err(Error::Ann)
        });
        held.buffer.release(py);
        Ok(done?)
    }

    /// Loads a serialized index, checking all of it; CorruptDatabaseError says where it is
    /// damaged (its `offset`).
    #[staticmethod]
    #[pyo3(signature = (data, /))]
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let held = Held::get(data, "data", &[b"B", b"b", b"c", b"<B", b"=B"], 1)?;
        let (ptr, items) = (held.ptr, held.items);
        let loaded = without_gil(py, || {
            // SAFETY: `held` keeps the export alive until after this closure returns.
            Hnsw::from_bytes(unsafe { u8s(ptr, items) })
        });
        held.buffer.release(py);
        Ok(HnswIndex {
            inner: RwLock::new(loaded.map_err(Error::Ann)?),
        })
    }

    /// Live rows.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::len)
    }

    fn __contains__(&self, py: Python<'_>, row: u32) -> PyResult<bool> {
        self.with(py, |index| index.contains(row))
    }

    /// Deleted nodes kept for routing.
    #[getter]
    fn deleted(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::deleted)
    }

    /// All nodes, live and deleted.
    #[getter]
    fn nodes(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::nodes)
    }

    #[getter]
    fn dim(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::dim)
    }

    #[getter]
    fn m(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |index| index.params().m)
    }

    #[getter]
    fn ef_construction(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |index| index.params().ef_construction)
    }

    /// The default `ef` of searches; saved with the index.
    #[getter]
    fn ef_search(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |index| index.params().ef_search)
    }

    #[setter]
    fn set_ef_search(&self, py: Python<'_>, ef: usize) -> PyResult<()> {
        Ok(without_gil(py, || {
            self.write()?.set_ef_search(ef).map_err(Error::Ann)
        })?)
    }

    /// Live rows a walk of the bottom layer from the entry point does not reach.
    fn unreachable(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, Hnsw::unreachable)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HnswIndex>()?;
    Ok(())
}
