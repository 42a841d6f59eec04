"""Small shared helpers: summaries of repeated timings, the common command-line pieces,
and the benchmark's one error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a child failed, a count is off)."""


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50, p90 and p99 (linear interpolation between ranks), min and max."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise BenchError("no samples to summarize")
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH, or with no PATH print JSON instead of Markdown",
    )


def progress(message: str) -> None:
    """What the benchmark is doing now, on stderr (stdout holds the report)."""
    print(message, file=sys.stderr, flush=True)


def emit(results: dict[str, Any], json_arg: str | None, markdown: Callable[[], str]) -> int:
    """Print the report: JSON on stdout for ``--json`` with no path; else the Markdown of
    ``markdown()``, after writing the JSON to ``--json PATH`` if given. Returns 0."""
    if json_arg == "-":
        print(json.dumps(results, indent=2))
        return 0
    if json_arg:
        with open(json_arg, "w") as f:
            json.dump(results, f, indent=2)
    print(markdown(), end="")
    return 0
