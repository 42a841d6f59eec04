"""``python -m startup_bench``: seed, measure, print a Markdown report (or JSON)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from typing import Any

from . import machine, measure, report
from .seed import DIM, seed
from .stats import BenchError, add_json_option, emit, progress

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


def _sizes(text: str) -> list[int]:
    """``1000,10000`` or ``1k,10k,100k``."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        try:
            value = int(part[:-1] if scale > 1 else part) * scale
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size: {part!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"sizes must be positive, got {value}")
        sizes.append(value)
    return sorted(set(sizes))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench",
        description="Mnemos open-time, replay, ask and write benchmarks (DESIGN.md Targets).",
        epilog="python -m startup_bench --ask-modes [options] runs the ask-by-retrieval-mode "
        "benchmark instead (same as python -m startup_bench.ask_modes; see its --help), "
        "python -m startup_bench --embed [options] the built-in embedder benchmark (same as "
        "python -m startup_bench.embed), python -m startup_bench --backends [options] the Rust "
        "core against the Python path: replay and decode rates, exact and int8 search (same "
        "as python -m startup_bench.backends).",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="memories per database, comma-separated (default 1000,10000,100000)",
    )
    group.add_argument("--quick", action="store_true", help="sizes 1000,10000 only")
    p.add_argument(
        "--runs",
        type=int,
        default=7,
        help="fresh processes per open/import measurement (default 7)",
    )
    p.add_argument(
        "--dir",
        help="where seeded databases live and are reused (default: a "
        "temporary directory, removed afterwards)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="evict the database files from the page cache before each open",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one open of the largest size, with and without snapshot",
    )
    add_json_option(p)
    return p


def run(args: argparse.Namespace, argv: list[str], root: str) -> dict[str, Any]:
    sizes = list(QUICK_SIZES) if args.quick else args.sizes
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "startup_bench", *argv]),
        "machine": machine.describe(root),
        "settings": {
            "sizes": sizes,
            "runs": args.runs,
            "warmup_runs": measure.WARMUP_RUNS,
            "cold": args.cold,
            "dim": DIM,
        },
        "import": [],
        "seed": [],
        "open": [],
        "ask": [],
        "write": [],
        "profiles": [],
    }
    results["machine"].update(measure.first_touch_ms_per_gib(args.runs))
    progress("timing imports ...")
    for module in ("mnemos", "numpy"):
        results["import"].append(measure.import_times(module, args.runs))
    for n in sizes:
        db = seed(root, n, log=progress)
        results["seed"].append(
            {
                "memories": n,
                "seed_items_per_s": db.seed_items_per_s,
                "checkpoint_ms": db.checkpoint_ms,
                "disk_bytes": db.disk_bytes,
            }
        )
        for snapshot, path in ((True, db.snap_path), (False, db.log_path)):
            progress(f"open {n:,} memories, snapshot {'fresh' if snapshot else 'none'} ...")
            results["open"].append(
                measure.open_times(path, args.runs, memories=n, snapshot=snapshot, cold=args.cold)
            )
        if args.profile and n == max(sizes):
            for snapshot, path in ((True, db.snap_path), (False, db.log_path)):
                results["profiles"].append(
                    {
                        "memories": n,
                        "snapshot": "fresh" if snapshot else "none",
                        "profile": measure.open_profile(path),
                    }
                )
        progress(f"ask on {n:,} memories ...")
        results["ask"].append(measure.ask_latency(db.snap_path, n))
    progress("write throughput ...")
    results["write"] = measure.write_throughput(root)
    results["machine"]["load_average_end"] = machine.load_average()
    results["targets"] = report.check_targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--ask-modes"]:
        # A separate benchmark with its own options; imported here because it imports
        # this module (and only this path needs it).
        from . import ask_modes

        return ask_modes.main(argv[1:])
    if argv[:1] == ["--embed"]:
        from . import embed

        return embed.main(argv[1:])
    if argv[:1] == ["--backends"]:
        from . import backends

        return backends.main(argv[1:])
    args = _parser().parse_args(argv)
    if args.runs < 1:
        _parser().error("--runs must be at least 1")
    temporary = args.dir is None
    root = tempfile.mkdtemp(prefix="mnemos-bench-") if temporary else args.dir
    os.makedirs(root, exist_ok=True)
    try:
        results = run(args, argv, root)
    except BenchError as exc:
        print(f"startup_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    return emit(results, args.json, lambda: report.markdown(results))
