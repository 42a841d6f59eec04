//! Vector kernels over float32 rows.
