"""The ``mnemos`` command: inspect, verify and repair a database from a shell.

Exit codes: 0 ok, 1 user error (one line on stderr, no traceback), 2 corruption found,
3 database locked by a writer.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .db import Mnemos
from .errors import CorruptDatabaseError, DatabaseLockedError, MnemosError
from .recovery import repair, verify

EXIT_OK, EXIT_USER, EXIT_CORRUPT, EXIT_LOCKED = 0, 1, 2, 3


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = f"{len(value)} item(s)"
        print(f"{key:>20}  {value}")


def _cmd_verify(args: argparse.Namespace) -> int:
    report = verify(args.path)
    data = report.to_dict()
    if args.json:
        _print(data, True)
    else:
        print(f"{args.path}: {'ok' if report.ok else 'DAMAGED'}")
        print(
            f"  segments {report.segments}, records {report.records}, "
            f"log seq {report.first_seq}..{report.last_seq}"
        )
        for snap in report.snapshots:
            state = "valid" if snap["valid"] else f"DAMAGED ({snap['reason']})"
            print(f"  snapshot seq {snap['seq']}: {state}")
        for p in report.problems:
            where = p.path if p.offset is None else f"{p.path} at offset {p.offset}"
            print(f"  {p.kind}: {where}: {p.reason}")
        for orphan in report.orphans:
            print(f"  orphan (removed by the next writer's open): {orphan}")
    return EXIT_OK if report.ok else EXIT_CORRUPT


def _cmd_repair(args: argparse.Namespace) -> int:
    report = verify(args.path)
    if report.ok:
        print(f"{args.path}: no damage found; nothing to repair")
        return EXIT_OK
    if not args.yes:
        print(f"{args.path} is damaged:")
        for p in report.problems:
            print(f"  {p.kind}: {p.path} at offset {p.offset}: {p.reason}")
        print(
            f"repair keeps a backup copy, then cuts the log after seq {report.last_seq}, "
            "dropping everything after the damage. Run again with --yes to do it."
        )
        return EXIT_CORRUPT
    result = repair(args.path, backup=args.backup)
    _print(result, args.json)
    return EXIT_OK if result.get("ok", True) else EXIT_CORRUPT


def _cmd_stats(args: argparse.Namespace) -> int:
    with Mnemos.open(args.path, embedder=None, readonly=True, create=False) as db:
        _print(db.stats(), args.json)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnemos", description="Mnemos memory database tools")
    parser.add_argument("--version", action="version", version=f"mnemos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="check every log record and snapshot; exit 2 if damaged")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("repair", help="back up, then cut the log to its last valid prefix")
    p.add_argument("path")
    p.add_argument("--yes", action="store_true", help="really repair (otherwise only explain)")
    p.add_argument("--backup", help="where to copy the database first (default PATH.bak-TIME)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_repair)
    p = sub.add_parser("stats", help="counts, sizes and settings of a database")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="mnemos: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except DatabaseLockedError as exc:
        print(f"mnemos: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except CorruptDatabaseError as exc:
        print(f"mnemos: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except (MnemosError, OSError) as exc:
        print(f"mnemos: {exc}", file=sys.stderr)
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
