//! The one place the binding releases the GIL (STYLE.md, principle 6).
//!
//! Every disk or vector call goes through [`without_gil`], so other Python threads keep running
//! while Rust works. Extract what the closure needs (pointers, lengths, integers) while still
//! attached: the closure must not touch Python objects, which `Send` enforces for `Py*` handles.

use pyo3::Python;

/// Runs `f` with the GIL released and returns its result once the GIL is held again.
pub fn without_gil<T, F>(py: Python<'_>, f: F) -> T
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    py.detach(f)
}
