//! Binding of `mnemos_core::kernels`: candidate scans and int8 search over float32 arrays.
//!
//! Arrays come in through the buffer protocol, without a copy: each must be C-contiguous, of
//! the stated item type in native byte order, and aligned to it, or the call raises
//! `InvalidInputError` (a `ValueError`; see error.rs) saying which argument is wrong and how
//! to fix it. The scans run with the GIL released. Results go back as bytes (little-endian)
//! that `mnemos/index/kernels.py` views with `numpy.frombuffer`.

use std::ffi::CStr;
use std::sync::OnceLock;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::gil::without_gil;
use mnemos_core::kernels::{self, Matrix};

/// The item types the kernels take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    F32,
    I8,
    /// numpy bool or uint8: a row takes part when its byte is not zero.
    Mask,
}

impl Item {
    fn accepts(self, format: &CStr) -> bool {
        // Native byte order: no prefix, '@' or '='; '<' too on a little-endian machine.
        let code = match format.to_bytes() {
            [c] | [b'@' | b'=', c] => *c,
            [b'<', c] if cfg!(target_endian = "little") => *c,
            _ => return false,
        };
        match self {
            Item::F32 => code == b'f',
            Item::I8 => code == b'b',
            Item::Mask => code == b'?' || code == b'B',
        }
    }

    fn size(self) -> usize {
        match self {
            Item::F32 => 4,
            Item::I8 | Item::Mask => 1,
        }
    }

    fn dtype(self) -> &'static str {
        match self {
            Item::F32 => "float32",
            Item::I8 => "int8",
            Item::Mask => "bool or uint8",
        }
    }
}

/// A validated buffer, held until `release`: its shape and where its items are.
struct View {
    buffer: PyUntypedBuffer,
    shape: Vec<usize>,
    /// Address and item count, as plain integers so the GIL-free closure can carry them.
    raw: (usize, usize),
}

impl View {
    /// `obj` as a C-contiguous `ndim`-dimensional buffer of `item`s.
    fn new(obj: &Bound<'_, PyAny>, name: &str, item: Item, ndim: usize) -> PyResult<View> {
        let buffer = PyUntypedBuffer::get(obj)?;
        let fix = format!("pass numpy.ascontiguousarray({name}, dtype=numpy.{})", {
            if item == Item::Mask {
                "bool"
            } else {
                item.dtype()
            }
        });
        if !item.accepts(buffer.format()) || buffer.item_size() != item.size() {
            return Err(Error::Arg(format!(
                "{name} must be {}, not buffer format {:?}; {fix}",
                item.dtype(),
                buffer.format()
            ))
            .into());
        }
        if buffer.dimensions() != ndim {
            return Err(Error::Arg(format!(
                "{name} must be {ndim}-dimensional; it has {} dimensions: reshape it",
                buffer.dimensions()
            ))
            .into());
        }
        if !buffer.is_c_contiguous() {
            return Err(Error::Arg(format!(
                "{name} must be C-contiguous (no copy is made implicitly); {fix}"
            ))
            .into());
        }
        let ptr = buffer.buf_ptr() as usize;
        let count = buffer.len_bytes() / item.size();
        if count > 0 && !ptr.is_multiple_of(item.size()) {
            return Err(Error::Arg(format!(
                "{name} is not aligned to {} bytes; pass a copy (numpy.array({name}))",
                item.size()
            ))
            .into());
        }
        let shape = buffer.shape().to_vec();
        Ok(View {
            buffer,
            shape,
            raw: (ptr, count),
        })
    }

    fn release(self, py: Python<'_>) {
        self.buffer.release(py);
    }
}

/// The items of a view.
///
/// # Safety
///
/// `raw` comes from a `View` of items of type `T` that is still held (not released): the
/// exporter may then not free, move or resize the memory, which is `raw.1` aligned items at
/// `raw.0`. Another thread may still write into a mutable exporter while we read (as with
/// `crc32`); the result is then of no particular snapshot.
unsafe fn items<'a, T>(raw: (usize, usize)) -> &'a [T] {
    let (ptr, count) = raw;
    if count == 0 {
        &[] // an empty export may carry a null or dangling pointer
    } else {
        // SAFETY: as stated by the caller.
        unsafe { std::slice::from_raw_parts(ptr as *const T, count) }
    }
}

/// Threads a scan may use: all the process may run on (asked once; on Linux the answer reads
/// the cgroup quota from files).
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Row-major parts of one matrix, each `rows x dim` float32 (or int8 codes): their views and
/// the common dimension.
fn parts_views(
    parts: &[Bound<'_, PyAny>],
    name: &str,
    item: Item,
    dim: usize,
) -> PyResult<Vec<View>> {
    let mut views = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let view = View::new(part, &format!("{name}[{i}]"), item, 2)?;
        if view.shape[1] != dim {
            return Err(Error::Arg(format!(
                "{name}[{i}] has rows of {} values; the queries have {dim}",
                view.shape[1]
            ))
            .into());
        }
        views.push(view);
    }
    Ok(views)
}

fn release_all(py: Python<'_>, views: impl IntoIterator<Item = View>) {
    for view in views {
        view.release(py);
    }
}

/// For each query (a row of `queries`, unit length), the rows within `margin` of the `k`-th
/// best score, ascending, as little-endian u32 bytes; see `mnemos_core::kernels::candidates`.
///
/// `parts`: the matrix as consecutive 2-d float32 arrays of the same width (rows numbered
/// across them); `norms`: float32, one per row; `queries`: 2-d float32; `mask`: None or
/// bool/uint8, one per row.
#[pyfunction]
#[pyo3(signature = (parts, norms, queries, mask, k, margin, /))]
fn candidates<'py>(
    py: Python<'py>,
    parts: Vec<Bound<'py, PyAny>>,
    norms: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    mask: Option<&Bound<'py, PyAny>>,
    k: usize,
    margin: f32,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let queries = View::new(queries, "queries", Item::F32, 2)?;
    let dim = queries.shape[1];
    let parts = parts_views(&parts, "parts", Item::F32, dim)?;
    let norms = View::new(norms, "norms", Item::F32, 1)?;
    let mask = mask
        .map(|m| View::new(m, "mask", Item::Mask, 1))
        .transpose()?;
    let raw_parts: Vec<(usize, usize)> = parts.iter().map(|v| v.raw).collect();
    let (raw_norms, raw_queries) = (norms.raw, queries.raw);
    let raw_mask = mask.as_ref().map(|m| m.raw);
    let found = without_gil(py, move || {
        // SAFETY: every view is held until after this closure returns (released below), and
        // each was checked to hold items of the type read here.
        let (norms, queries, mask) = unsafe {
            (
                items::<f32>(raw_norms),
                items::<f32>(raw_queries),
                raw_mask.map(|m| items::<u8>(m)),
            )
        };
        // SAFETY: as above.
        let parts = raw_parts
            .iter()
            .map(|&p| unsafe { items::<f32>(p) })
            .collect();
        let matrix = Matrix::new(parts, dim)?;
        kernels::candidates(&matrix, norms, queries, mask, k, margin, threads())
    });
    release_all(py, parts);
    release_all(py, [norms, queries].into_iter().chain(mask));
    let found = found.map_err(Error::Shape)?;
    Ok(found
        .iter()
        .map(|rows| {
            let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
            PyBytes::new(py, &bytes)
        })
        .collect())
}

/// Symmetric int8 codes of each row of `matrix` (2-d float32) and the row scales, as
/// (int8 bytes, little-endian float32 bytes); see `mnemos_core::kernels::quantize`.
#[pyfunction]
#[pyo3(signature = (matrix, /))]
fn quantize<'py>(
    py: Python<'py>,
    matrix: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let view = View::new(matrix, "matrix", Item::F32, 2)?;
    let dim = view.shape[1];
    let raw = view.raw;
    let result = without_gil(py, move || {
        // SAFETY: `view` is held until after this closure returns and holds float32 items.
        let values = unsafe { items::<f32>(raw) };
        kernels::quantize(values, dim)
    });
    view.release(py);
    let (codes, scales) = result.map_err(Error::Shape)?;
    let codes: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
    let scales: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    Ok((PyBytes::new(py, &codes), PyBytes::new(py, &scales)))
}

/// For each query, the best `k` rows as (little-endian u32 rows, little-endian float64
/// scores), best first: an approximate scan over int8 `codes` (2-d, the rows of `parts`) and
/// `scales`, then exact rescoring of the best `rescore` over the float32 `parts`; see
/// `mnemos_core::kernels::search_int8`.
#[pyfunction]
#[pyo3(signature = (codes, scales, parts, norms, queries, mask, k, rescore, /))]
#[allow(clippy::too_many_arguments)]
fn search_int8<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    scales: &Bound<'py, PyAny>,
    parts: Vec<Bound<'py, PyAny>>,
    norms: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    mask: Option<&Bound<'py, PyAny>>,
    k: usize,
    rescore: usize,
) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
    let queries = View::new(queries, "queries", Item::F32, 2)?;
    let dim = queries.shape[1];
    let codes = parts_views(std::slice::from_ref(codes), "codes", Item::I8, dim)?;
    let parts = parts_views(&parts, "parts", Item::F32, dim)?;
    let scales = View::new(scales, "scales", Item::F32, 1)?;
    let norms = View::new(norms, "norms", Item::F32, 1)?;
    let mask = mask
        .map(|m| View::new(m, "mask", Item::Mask, 1))
        .transpose()?;
    let raw_parts: Vec<(usize, usize)> = parts.iter().map(|v| v.raw).collect();
    let raw_codes = codes[0].raw;
    let (raw_scales, raw_norms, raw_queries) = (scales.raw, norms.raw, queries.raw);
    let raw_mask = mask.as_ref().map(|m| m.raw);
    let found = without_gil(py, move || {
        // SAFETY: every view is held until after this closure returns (released below), and
        // each was checked to hold items of the type read here.
        let (codes, scales, norms, queries, mask) = unsafe {
            (
                items::<i8>(raw_codes),
                items::<f32>(raw_scales),
                items::<f32>(raw_norms),
                items::<f32>(raw_queries),
                raw_mask.map(|m| items::<u8>(m)),
            )
        };
        // SAFETY: as above.
        let parts = raw_parts
            .iter()
            .map(|&p| unsafe { items::<f32>(p) })
            .collect();
        let matrix = Matrix::new(parts, dim)?;
        let codes = Matrix::new(vec![codes], dim)?;
        kernels::search_int8(
            &codes,
            scales,
            &matrix,
            norms,
            queries,
            mask,
            k,
            rescore,
            threads(),
        )
    });
    release_all(py, codes);
    release_all(py, parts);
    release_all(py, [scales, norms, queries].into_iter().chain(mask));
    let found = found.map_err(Error::Shape)?;
    Ok(found
        .iter()
        .map(|hits| {
            let rows: Vec<u8> = hits.iter().flat_map(|(r, _)| r.to_le_bytes()).collect();
            let scores: Vec<u8> = hits.iter().flat_map(|(_, s)| s.to_le_bytes()).collect();
            (PyBytes::new(py, &rows), PyBytes::new(py, &scores))
        })
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(candidates, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(search_int8, m)?)?;
    Ok(())
}
