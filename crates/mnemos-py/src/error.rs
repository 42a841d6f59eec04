//! Every error the binding raises on purpose, mapped to the `mnemos.errors` tree (STYLE.md,
//! principle 5).
//!
//! [`Error`] holds each core error type and the argument errors the binding finds itself; the
//! `match`es in [`Error::class`] and [`ann_class`] have no wildcard arm, so a new variant does
//! not compile until it is given a class here:
//!
//! | Rust error                                        | Python exception                      |
//! |---------------------------------------------------|---------------------------------------|
//! | [`Error::Arg`] (buffer format, shape, size)       | `InvalidInputError` (a `ValueError`)  |
//! | `kernels::ShapeError`                             | `InvalidInputError`                   |
//! | `AnnError::{Invalid, NotFinite, Zero, Full}`      | `InvalidInputError`                   |
//! | `AnnError::{RowLive, RowNotLive}` (unknown row)   | `InvalidInputError`, not `KeyError`   |
//! | `AnnError::Item { error, .. }` (one of a batch)   | the class of `error`                  |
//! | `AnnError::Corrupt { offset, .. }`                | `CorruptDatabaseError(offset=offset)` |
//! | [`Error::Poisoned`]                               | `MnemosError`                         |
//!
//! `mnemos_core::wal` has no error type: a scan reports damage in its result. Nor does event
//! decoding raise: a payload `msgpack::Reader` finds `Malformed` is left to the Python
//! reference, which raises what it always did. No binding call
//! touches files, so there is no `std::io::Error` to map; one that does adds a variant raised
//! by `io::ErrorKind` as `FileNotFoundError`, `PermissionError` or `OSError`. What PyO3 raises
//! itself while extracting arguments (TypeError for an object without the buffer protocol,
//! OverflowError for an int that does not fit) is left as it is.
//!
//! The classes are looked up in `mnemos.errors` when first raised and cached as type objects,
//! the only Python objects the binding keeps.

use std::fmt;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use mnemos_core::ann::AnnError;
use mnemos_core::kernels::ShapeError;

/// Why a binding call failed; converts into the Python exception of its class.
#[derive(Debug)]
pub enum Error {
    /// An argument the binding itself refuses (buffer format, dimensions, contiguity, size);
    /// the message says which argument and how to fix it.
    Arg(String),
    Ann(AnnError),
    Shape(ShapeError),
    /// A lock poisoned by a panic while it was held: the object may be half-changed. The
    /// message says what to rebuild.
    Poisoned(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Arg(message) => f.write_str(message),
            Error::Ann(err) => err.fmt(f),
            Error::Shape(err) => err.fmt(f),
            Error::Poisoned(message) => f.write_str(message),
        }
    }
}

/// The `mnemos.errors` class an error is raised as.
enum Class {
    /// `InvalidInputError`: the caller passed something wrong; nothing changed.
    InvalidInput,
    /// `CorruptDatabaseError` at this offset of the bytes passed in.
    Corrupt { offset: usize },
    /// `MnemosError` itself: the object is unusable, whatever the arguments.
    Broken,
}

impl Error {
    fn class(&self) -> Class {
        match self {
            Error::Arg(_) => Class::InvalidInput,
            Error::Ann(err) => ann_class(err),
            Error::Shape(ShapeError(_)) => Class::InvalidInput,
            Error::Poisoned(_) => Class::Broken,
        }
    }
}

fn ann_class(err: &AnnError) -> Class {
    match err {
        // An unknown row is a caller's mistake about the index, not a missing memory: the
        // wrapper (mnemos/index/ann.py) documents InvalidInputError for it.
        AnnError::Invalid(_)
        | AnnError::NotFinite { .. }
        | AnnError::Zero
        | AnnError::RowLive(_)
        | AnnError::RowNotLive(_)
        | AnnError::Full => Class::InvalidInput,
        AnnError::Item { error, .. } => ann_class(error),
        AnnError::Corrupt { offset, .. } => Class::Corrupt { offset: *offset },
    }
}

static INVALID_INPUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CORRUPT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static MNEMOS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn class<'py>(
    py: Python<'py>,
    cell: &PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<Bound<'py, PyType>> {
    cell.import(py, "mnemos.errors", name).cloned()
}

impl Error {
    /// The Python exception; if `mnemos.errors` cannot be imported, the ImportError.
    fn into_pyerr(self, py: Python<'_>) -> PyResult<PyErr> {
        let message = self.to_string();
        Ok(match self.class() {
            Class::InvalidInput => {
                PyErr::from_type(class(py, &INVALID_INPUT, "InvalidInputError")?, (message,))
            }
            Class::Corrupt { offset } => {
                // Its path and offset are keyword-only. The bytes came from the caller, so
                // the path is unknown here: the caller that read them from a file adds it.
                let kwargs = PyDict::new(py);
                kwargs.set_item("path", py.None())?;
                kwargs.set_item("offset", offset)?;
                let exc =
                    class(py, &CORRUPT, "CorruptDatabaseError")?.call((message,), Some(&kwargs))?;
                PyErr::from_value(exc)
            }
            Class::Broken => PyErr::from_type(class(py, &MNEMOS, "MnemosError")?, (message,)),
        })
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        // Errors are converted after the GIL-free part of a call, so this attaches nothing new.
        Python::attach(|py| err.into_pyerr(py).unwrap_or_else(|failed| failed))
    }
}
