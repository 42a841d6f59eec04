"""Run one fuzz target under atheris: ``python fuzz/run.py TARGET [libFuzzer options]``.

Seeds come from ``tests/data/fuzz/TARGET/`` (and the golden files); a crashing input is
written by libFuzzer as ``crash-*`` in the working directory: copy it into that folder so
``tests/test_fuzz_regressions.py`` checks it from then on.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["mnemos"]):
    from targets import TARGETS


def main() -> None:
    name = sys.argv.pop(1)
    target = TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
