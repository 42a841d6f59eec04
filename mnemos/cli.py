"""The ``mnemos`` command: inspect, verify and repair a database from a shell.

Exit codes: 0 ok, 1 user error (one line on stderr, no traceback), 2 corruption found (or a
replay that diverges), 3 database locked by a writer, 4 ``diff`` found a difference.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from . import __version__, replay
from .db import Mnemos
from .errors import CorruptDatabaseError, DatabaseLockedError, MnemosError
from .events import decode_event, from_micros
from .recovery import repair, verify
from .wal import LogCursor

EXIT_OK, EXIT_USER, EXIT_CORRUPT, EXIT_LOCKED, EXIT_DIFFERENT = 0, 1, 2, 3, 4


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


def _cmd_export_replay(args: argparse.Namespace) -> int:
    with Mnemos.open(args.path, embedder=None, readonly=True, create=False) as db:
        written = db.export_replay(
            args.out,
            since=args.since,
            until=args.until,
            namespaces=args.namespace,
            checkpoint_every=args.checkpoint_every,
        )
    _print(written, args.json)
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    report = Mnemos.replay(
        args.log, into=args.into, verify=not args.no_verify, stop_at=args.stop_at
    )
    data = asdict(report)
    data["ok"] = report.ok
    if args.json:
        _print(data, True)
    else:
        where = f" into {args.into}" if args.into else ""
        print(
            f"{args.log}: replayed {report.events_applied} events{where}, "
            f"{report.checkpoints_verified} checkpoints verified; state {report.state_hash}"
        )
        d = report.divergence
        if d is not None:
            print(f"DIVERGED at seq {d.seq} ({d.kind}): expected {d.expected}, got {d.actual}")
    return EXIT_OK if report.ok else EXIT_CORRUPT


def _cmd_diff(args: argparse.Namespace) -> int:
    a, b = replay.Source(args.a), replay.Source(args.b)
    result = replay.diff(a, b)
    if args.json:
        _print(result, True)
    else:
        first = result["first_diverging_seq"]
        print("same events" if first is None else f"first diverging event: seq {first}")
        for key in ("only_in_a", "only_in_b", "changed"):
            ids = result[key]
            print(
                f"{key.replace('_', ' ')}: {len(ids)}"
                + (f" ({', '.join(ids[:20])})" if ids else "")
            )
    return EXIT_OK if result["same"] else EXIT_DIFFERENT


def _event_line(seq: int, event: dict[str, Any]) -> dict[str, Any]:
    """An event for printing: its fields, the vector as its length, times in ISO 8601."""
    line: dict[str, Any] = {"seq": seq}
    for key, value in event.items():
        if key == "vec":
            line["dim"] = len(value) // 4
        elif key in ("at", "ts"):
            line[key] = from_micros(value).isoformat()
        else:
            line[key] = value
    return line


def _cmd_log(args: argparse.Namespace) -> int:
    with Mnemos.open(args.path, embedder=None, readonly=True, create=False) as db:
        since = max(args.since or 1, 1)
        cursor = LogCursor(os.path.join(db.path, "wal"), since - 1)
        try:
            while True:
                records, _tail = cursor.read()
                for seq, payload in records:
                    line = _event_line(seq, decode_event(payload))
                    if args.json:
                        print(json.dumps(line, default=str), flush=True)
                    else:
                        rest = " ".join(
                            f"{k}={v!r}" for k, v in line.items() if k not in ("seq", "t", "at")
                        )
                        print(f"{seq:>8}  {line['at']}  {line['t']:<10} {rest}", flush=True)
                if not args.follow:
                    return EXIT_OK
                time.sleep(args.interval)
        except KeyboardInterrupt:
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
    p = sub.add_parser("export-replay", help="write the events to a replay log")
    p.add_argument("path")
    p.add_argument("out")
    p.add_argument("--since", type=int, help="first seq (default 1)")
    p.add_argument("--until", type=int, help="last seq (default: the last event)")
    p.add_argument("--namespace", action="append", help="only this namespace (repeatable)")
    p.add_argument("--checkpoint-every", type=int, default=replay.CHECKPOINT_EVERY)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_export_replay)
    p = sub.add_parser("replay", help="replay a log and check it; exit 2 if it diverges")
    p.add_argument("log")
    p.add_argument("--into", help="a new database directory to rebuild (default: in memory)")
    p.add_argument("--no-verify", action="store_true", help="skip digests and checkpoints")
    p.add_argument("--stop-at", type=int, help="stop after this seq")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_replay)
    p = sub.add_parser("diff", help="where two replay logs or databases part; exit 4 if they do")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_diff)
    p = sub.add_parser("log", help="print the events of a database, one a line")
    p.add_argument("path")
    p.add_argument("--since", type=int, help="first seq (default 1)")
    p.add_argument("--follow", action="store_true", help="keep printing new events (Ctrl-C ends)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between looks (--follow)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=_cmd_log)
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
