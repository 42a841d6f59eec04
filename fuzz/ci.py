"""Run every fuzz target for a while: ``python fuzz/ci.py [--seconds 60]`` (``make fuzz-ci``).

Each target starts from a copy of its seeds in ``tests/data/fuzz/TARGET/`` (so the stored
corpus is not changed) and runs under atheris for ``--seconds``; a crash fails the run and
leaves the input in ``fuzz-artifacts/``. Prints each target's executions.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parent / "tests" / "data" / "fuzz"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument(
        "targets", nargs="*", default=["segment", "event", "snapshot", "replay_log", "api"]
    )
    args = p.parse_args()
    artifacts = Path("fuzz-artifacts")
    artifacts.mkdir(exist_ok=True)
    failed = []
    for name in args.targets:
        with tempfile.TemporaryDirectory() as corpus:
            for seed in (SEEDS / name).iterdir():
                shutil.copy(seed, corpus)
            out = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "run.py"),
                    name,
                    f"-max_total_time={args.seconds}",
                    "-print_final_stats=1",
                    "-rss_limit_mb=4096",
                    f"-artifact_prefix={artifacts}/{name}-",
                    corpus,
                ],
                capture_output=True,
                text=True,
            )
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out.stderr)
        print(f"fuzz {name}: {runs.group(1) if runs else '?'} executions, exit {out.returncode}")
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            failed.append(name)
    print(f"fuzz: {len(args.targets) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
