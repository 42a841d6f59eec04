"""The ``mnemos`` command: create, write, ask, inspect, verify and repair a database from a
shell.

Every command that works on a database takes its path first. Output is a human table on a
terminal and JSON otherwise (``--json`` and ``--table`` force one): one object a line for
commands that list things (hits, versions, neighbours, ids, events), one object for the
rest. Exit codes: 0 ok, 1 user error (one line on stderr, no traceback), 2 corruption found
(or a replay that diverges), 3 database locked by a writer, 4 ``diff`` found a difference.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, NoReturn

from . import __version__, config, replay
from . import format as fmt
from .db import Mnemos
from .errors import (
    CorruptDatabaseError,
    DatabaseLockedError,
    InvalidInputError,
    MemoryNotFound,
    MnemosError,
)
from .events import (
    check_id,
    check_importance,
    check_kind,
    check_metadata,
    check_namespace,
    check_text,
    check_vector,
    decode_event,
    from_micros,
    to_micros,
)
from .recovery import repair, verify
from .types import Hit, Memory
from .wal import LogCursor, list_numbered

EXIT_OK, EXIT_USER, EXIT_CORRUPT, EXIT_LOCKED, EXIT_DIFFERENT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C

REMEMBER_BATCH = 256  # memories per transaction when remembering from stdin
TEXT_CELL_CHARS = 60  # text longer than this is cut in tables (JSON carries it whole)
_ITEM_KEYS = ("text", "metadata", "namespace", "kind", "importance", "timestamp", "vector", "id")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SHOW = object()  # ``capacity`` without MAX: show the bounds


# -- arguments --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 1 (argparse's own
    2 means "corruption found" here)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def _json_object(text: str) -> dict[str, Any]:
    value = _json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"k\": 1}}': {text!r}")
    return value


def _json_vector(text: str) -> list[float]:
    value = _json_value(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"must be a JSON list of numbers: {text!r}")
    return value


def _datetime(text: str) -> datetime:
    """ISO 8601 (a trailing Z, or no zone, means UTC)."""
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _point_arg(text: str) -> datetime | float:
    """A point in time: ISO 8601 or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return _datetime(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds"
        ) from None


def _time_arg(text: str) -> datetime | timedelta | float:
    """A point in time, or a duration meaning that long before now ("7d")."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        return _point_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2024-05-01T12:00:00Z), epoch seconds, "
            "or a duration back from now (90s, 30m, 12h, 7d, 2w)"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return value


def _capacity_arg(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 or 'none': {text!r}")
    return value


def _add_db(p: argparse.ArgumentParser) -> None:
    """The database path: the first positional of every command that opens one or, when
    ``MNEMOS_DB`` is set, that directory (then DB is left out; ``--db`` overrides it)."""
    env = os.environ.get(config.DB_ENV, "").strip()
    if env:
        p.add_argument(
            "--db", dest="path", default=env, metavar="DB", help=f"default ${config.DB_ENV}"
        )
    else:
        p.add_argument("path", metavar="DB", help="the database directory")


def _db_path(args: argparse.Namespace) -> str:
    path: str = args.path
    return path


def _open(args: argparse.Namespace, *, write: bool = False, embed: bool = False) -> Mnemos:
    """An existing database: a writer (holding the lock) or a reader; with its recorded
    embedder only when text is to be embedded (a vector-only one answers text by words)."""
    return Mnemos.open(
        _db_path(args),
        embedder="default" if embed else None,
        readonly=not write,
        create=False,
    )


# -- output -----------------------------------------------------------------------------


def _json_mode(args: argparse.Namespace) -> bool:
    """JSON unless the human format is asked for or stdout is a terminal."""
    if getattr(args, "json", False):
        return True
    if getattr(args, "table", False):
        return False
    return not sys.stdout.isatty()


def _emit(data: Mapping[str, Any]) -> None:
    """One JSON object on one line."""
    print(json.dumps(data, default=str), flush=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str) if value else ""
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row, whatever the text holds
    return text if len(text) <= TEXT_CELL_CHARS else text[: TEXT_CELL_CHARS - 1] + "…"


def _table_lines(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Aligned columns under a header line; the last column is not padded."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    return [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(columns), *cells]
    ]


def _print_fields(data: Mapping[str, Any]) -> None:
    """A single result, one field a line."""
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = f"{len(value)} item(s)" + (
                f": {', '.join(map(str, value[:20]))}"
                if value and all(isinstance(v, str) for v in value)
                else ""
            )
        elif value is None:
            value = "-"
        print(f"{key:>20}  {value}")


def _show(args: argparse.Namespace, data: Mapping[str, Any]) -> None:
    """A single result: one JSON object, or its fields."""
    if args.as_json:
        _emit(data)
    else:
        _print_fields(data)


def _show_rows(
    args: argparse.Namespace, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """A list: one JSON object a line, or a table (nothing at all for no rows in JSON)."""
    if args.as_json:
        for row in rows:
            _emit(row)
    elif rows:
        print("\n".join(_table_lines(rows, columns)))
    else:
        print("(none)")


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _memory_fields(m: Memory | Hit) -> dict[str, Any]:
    return {
        "id": m.id,
        "text": m.text,
        "namespace": m.namespace,
        "kind": m.kind,
        "importance": m.importance,
        "timestamp": _iso(m.timestamp),
        "metadata": m.metadata,
    }


class _Progress:
    """A status line on stderr, rewritten in place, only when stderr is a terminal:
    ``step(done, total)`` for counted work, or, with ``ticking``, the time spent on one
    long call. Closing clears the line."""

    def __init__(self, label: str, *, ticking: bool = False):
        self.label = label
        self.shown = sys.stderr.isatty()
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.shown and ticking:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _write(self, status: str) -> None:
        sys.stderr.write(f"\r{self.label}: {status}\x1b[K")
        sys.stderr.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self._write(f"{time.monotonic() - self._start:.1f} s")

    def step(self, done: int, total: int) -> None:
        if self.shown:
            self._write(f"{done}/{total}")

    def clear(self) -> None:
        """Erase the line (before printing something else on the terminal)."""
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.clear()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _long_call(label: str, call: Callable[[], Any]) -> Any:
    with _Progress(label, ticking=True):
        return call()


# -- the existing inspection and replay commands ------------------------------------------


def _cmd_verify(args: argparse.Namespace) -> int:
    path = _db_path(args)
    report = _long_call("verify", lambda: verify(path))
    if args.as_json:
        _emit(report.to_dict())
    else:
        print(f"{path}: {'ok' if report.ok else 'DAMAGED'}")
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
    path = _db_path(args)
    report = _long_call("verify", lambda: verify(path))
    if report.ok:
        if args.as_json:
            _emit({"repaired": False, "reason": "no damage found", "backup": None, "ok": True})
        else:
            print(f"{path}: no damage found; nothing to repair")
        return EXIT_OK
    if not args.yes:
        advice = (
            f"repair keeps a backup copy, then cuts the log after seq {report.last_seq}, "
            "dropping everything after the damage. Run again with --yes to do it."
        )
        if args.as_json:
            data = report.to_dict()
            _emit({"repaired": False, "reason": advice, "backup": None, **data})
        else:
            print(f"{path} is damaged:")
            for p in report.problems:
                print(f"  {p.kind}: {p.path} at offset {p.offset}: {p.reason}")
            print(advice)
        return EXIT_CORRUPT
    result = _long_call("repair", lambda: repair(path, backup=args.backup))
    _show(args, result)
    return EXIT_OK if result.get("ok", True) else EXIT_CORRUPT


def _cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as db:
        stats = db.stats()
    if args.as_json:
        _emit(stats)
    else:
        print("\n".join(_stats_lines(_db_path(args), stats)))
    return EXIT_OK


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _stats_lines(path: str, s: Mapping[str, Any]) -> list[str]:
    """``stats()`` at a glance: what is stored, by namespace and kind, then the files,
    the indexes and the settings."""
    emb = s["embedder"]
    embedder = "none (vector-only)" if emb is None else f"{emb['name']} ({emb['dim']}-d)"
    cache = s["embedding_cache"]
    last = s["last_checkpoint"]
    ann = s["indexes"]["ann"]
    vectors, lexical = s["indexes"]["vectors"], s["indexes"]["lexical"]
    lines = [
        f"{path}: format {s['format_version']}, {s['backend']} backend",
        f"memories    {s['memories']:,} live, {s['forgotten']:,} forgotten, "
        f"{s['evicted']:,} evicted; {s['edges']:,} edges; {s['events']:,} events",
        "",
    ]
    rows = [
        {"namespace": ns, "live": part["live"], "forgotten": part["forgotten"], **part["by_kind"]}
        for ns, part in s["by_namespace"].items()
    ]
    rows.append({"namespace": "(all)", "live": s["memories"], "forgotten": s["forgotten"]})
    rows[-1].update(s["by_kind"])
    lines += _table_lines(rows, ["namespace", "live", "forgotten", *fmt.KINDS])
    lines.append("")
    for rule in s["capacity"]:
        scope = "whole database" if rule["namespace"] is None else rule["namespace"]
        lines.append(f"capacity    {scope}: {rule['max_entries']:,} ({rule['policy']})")
    lines += [
        f"log         {_size(s['log_bytes'])} in {s['segments']} segment(s)",
        f"snapshots   {_size(s['snapshot_bytes'])}; last checkpoint "
        + ("none" if last is None else f"seq {last['seq']:,} at {last['written']}"),
        f"indexes     vectors {vectors['rows']:,} rows ({_size(vectors['bytes'])}), "
        f"lexical {lexical['terms']:,} terms, graph {s['indexes']['graph']['edges']:,} edges, "
        + ("ANN not started" if ann is None else f"ANN {ann['live']:,} nodes"),
        f"embedder    {embedder}, dim {s['dim']}",
        "cache       "
        + ("-" if cache is None else f"{cache['hits']:,} hits, hit rate {cache['hit_rate']:.0%}"),
    ]
    return lines


def _cmd_export_replay(args: argparse.Namespace) -> int:
    with _open(args) as db:
        written = _long_call(
            "export-replay",
            lambda: db.export_replay(
                args.out,
                since=args.since,
                until=args.until,
                namespaces=args.namespace,
                checkpoint_every=args.checkpoint_every,
            ),
        )
    _show(args, written)
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    report = _long_call(
        "replay",
        lambda: Mnemos.replay(
            args.log, into=args.into, verify=not args.no_verify, stop_at=args.stop_at
        ),
    )
    data = asdict(report)
    data["ok"] = report.ok
    if args.as_json:
        _emit(data)
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
    if args.as_json:
        _emit(result)
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
            line[key] = _iso(from_micros(value))
        else:
            line[key] = value
    return line


def _cmd_log(args: argparse.Namespace) -> int:
    with _open(args) as db:
        wal_dir = os.path.join(db.path, fmt.WAL_DIR)
        first = (list_numbered(wal_dir, fmt.WAL_SUFFIX) or [1])[0]  # compact drops the rest
        if args.since is not None and args.since < first:
            raise InvalidInputError(
                f"the log of {db.path} starts at seq {first} (compact removed the events "
                f"before it); use --since {first} or later"
            )
        since = first if args.since is None else args.since
        cursor = LogCursor(wal_dir, since - 1)
        try:
            while True:
                records, _tail = cursor.read()
                for seq, payload in records:
                    line = _event_line(seq, decode_event(payload))
                    if args.as_json:
                        _emit(line)
                    else:
                        rest = " ".join(
                            f"{k}={v!r}" for k, v in line.items() if k not in ("seq", "t", "at")
                        )
                        print(f"{seq:>8}  {line['at']}  {line['t']:<10} {rest}", flush=True)
                if not args.follow:
                    return EXIT_OK
                time.sleep(args.interval)
        except KeyboardInterrupt:  # how --follow ends
            return EXIT_OK


# -- creating and writing ----------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    path = _db_path(args)
    if os.path.exists(os.path.join(path, fmt.DB_FILE)):
        raise InvalidInputError(f"{path} already holds a Mnemos database")
    fresh = not os.path.exists(path)
    was_empty = os.path.isdir(path) and not os.listdir(path)
    try:
        db = Mnemos.open(
            path, embedder=None if args.no_embedder else "default", dim=args.dim, create=True
        )
    except BaseException:
        if fresh or was_empty:  # a refused creation leaves nothing behind
            shutil.rmtree(path, ignore_errors=True)
            if was_empty:
                os.mkdir(path)
        raise
    with db:
        stats = db.stats()
    embedder = stats["embedder"]
    _show(
        args,
        {
            "path": path,
            "dim": stats["dim"],
            "embedder": None if embedder is None else embedder["name"],
            "seq": stats["seq"],
        },
    )
    return EXIT_OK


def _remember_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments the options give (only those given)."""
    given = {
        "metadata": args.metadata,
        "namespace": args.namespace,
        "kind": args.kind,
        "importance": args.importance,
        "timestamp": args.timestamp,
    }
    return {k: v for k, v in given.items() if v is not None}


def _read_items(args: argparse.Namespace) -> list[tuple[int, dict[str, Any]]]:
    """Stdin as memories, with their line numbers: one text a line (blank lines skipped),
    or with ``--jsonl`` one JSON object a line; the options fill what a line leaves out."""
    if sys.stdin.isatty():
        print("reading memories from stdin, one a line; Ctrl-D ends", file=sys.stderr)
    defaults = _remember_options(args)
    items = []
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"stdin line {number}: not UTF-8 ({exc})") from None
        if not line.strip():
            continue
        if not args.jsonl:
            items.append((number, {**defaults, "text": line}))
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"stdin line {number}: not valid JSON ({exc})") from None
        if not isinstance(item, dict):
            raise InvalidInputError(f"stdin line {number}: not a JSON object")
        if isinstance(item.get("timestamp"), str):
            try:
                item["timestamp"] = _datetime(item["timestamp"])
            except ValueError:
                raise InvalidInputError(
                    f"stdin line {number}: timestamp {item['timestamp']!r} is not ISO 8601"
                ) from None
        items.append((number, {**defaults, **item}))
    return items


def _check_items(db: Mnemos, items: Iterable[tuple[int | None, Mapping[str, Any]]]) -> None:
    """Reject bad input before anything is written: stdin is committed in batches, and a
    bad line found halfway would leave the batches before it stored. ``None`` numbers the
    memory of a TEXT argument."""
    stats = db.stats()
    dim, embeds = stats["dim"], stats["embedder"] is not None
    ids: set[str] = set()
    for number, item in items:
        try:
            unknown = sorted(set(item) - set(_ITEM_KEYS))
            if unknown:
                raise InvalidInputError(
                    f"unknown key(s) {', '.join(unknown)}; use {', '.join(_ITEM_KEYS)}"
                )
            if "text" not in item:
                raise InvalidInputError("no 'text'")
            check_text(item["text"])
            check_metadata(item.get("metadata"))
            check_namespace(item.get("namespace"))
            check_kind(item.get("kind", "episodic"))
            if item.get("importance") is not None:
                check_importance(item["importance"])
            if item.get("timestamp") is not None:
                to_micros(item["timestamp"])
            if item.get("vector") is not None:
                vec = check_vector(item["vector"], dim)
                dim = dim or len(vec) // 4  # a new vector-only database: the first sets it
            elif not embeds:
                raise InvalidInputError(
                    "this database has no embedder: give the memory a vector "
                    '(--vector, or --jsonl lines with "vector": [...])'
                )
            if item.get("id") is not None:
                mid = check_id(item["id"])
                if mid in ids:
                    raise InvalidInputError(f"id {mid!r} appears twice")
                ids.add(mid)
                if _exists(db, mid):
                    raise InvalidInputError(f"a memory with id {mid!r} already exists")
        except InvalidInputError as exc:
            if number is None:
                raise
            raise InvalidInputError(f"stdin line {number}: {exc}") from None


def _exists(db: Mnemos, mid: str) -> bool:
    try:
        db.get(mid)
    except MemoryNotFound:
        return False
    return True


def _cmd_remember(args: argparse.Namespace) -> int:
    from_stdin = args.text is None or args.text == "-"
    if from_stdin and (args.id is not None or args.vector is not None):
        raise InvalidInputError("--id and --vector name one memory: give its TEXT as well")
    if not from_stdin and args.jsonl:
        raise InvalidInputError("--jsonl reads stdin: give no TEXT (or '-')")
    if not os.path.isfile(os.path.join(_db_path(args), fmt.DB_FILE)):  # before reading stdin
        raise InvalidInputError(f"no Mnemos database at {_db_path(args)}; create it with init")
    items = _read_items(args) if from_stdin else []
    with _open(args, write=True, embed=True) as db:
        if not from_stdin:
            item = {"text": args.text, "vector": args.vector, "id": args.id}
            item.update(_remember_options(args))
            _check_items(db, [(None, item)])
            _show_ids(args, [db.remember(**item)])
            return EXIT_OK
        _check_items(db, items)
        stored = 0
        with _Progress("remember") as progress:
            for start in range(0, len(items), REMEMBER_BATCH):
                batch = [item for _n, item in items[start : start + REMEMBER_BATCH]]
                try:
                    ids = db.remember_many(batch)
                except MnemosError as exc:
                    if not stored:
                        raise
                    raise type(exc)(
                        f"{exc} (the {stored} memories before stdin line "
                        f"{items[start][0]} were stored; their ids are printed)"
                    ) from None
                stored += len(ids)
                progress.clear()
                _show_ids(args, ids)
                progress.step(stored, len(items))
    return EXIT_OK


def _show_ids(args: argparse.Namespace, ids: Sequence[str]) -> None:
    for mid in ids:
        if args.as_json:
            _emit({"id": mid})
        else:
            print(mid, flush=True)


def _cmd_forget(args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.ids))  # each once, in the order given
    with _open(args, write=True) as db:
        for mid in ids:  # all known before any is forgotten: bad input changes nothing
            db.get(mid)
        for mid in ids:
            db.forget(mid)
    for mid in ids:
        if args.as_json:
            _emit({"id": mid})
        else:
            print(f"forgot {mid}")
    return EXIT_OK


def _cmd_connect(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        db.connect(args.a, args.b, relation=args.relation, weight=args.weight)
    _show(args, {"a": args.a, "b": args.b, "relation": args.relation, "weight": args.weight})
    return EXIT_OK


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        seq = _long_call("checkpoint", db.checkpoint)
        stats = db.stats()
    _show(args, {"seq": seq, "snapshot_bytes": stats["snapshot_bytes"]})
    return EXIT_OK


def _cmd_compact(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        result = _long_call("compact", lambda: db.compact(keep_versions=args.keep_versions))
    _show(args, result)
    return EXIT_OK


def _cmd_backup(args: argparse.Namespace) -> int:
    with _open(args) as db:
        result = _long_call("backup", lambda: db.backup(args.dest, verify=not args.no_verify))
    _show(args, result)
    return EXIT_OK


def _capacity_rows(db: Mnemos) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = db.stats().get("capacity") or []
    return rules


def _cmd_capacity(args: argparse.Namespace) -> int:
    columns = ("namespace", "max_entries", "policy")
    if args.max is _SHOW:
        if args.policy is not None:
            raise InvalidInputError("--policy goes with a MAX to set (or 'none')")
        with _open(args) as db:
            rules = _capacity_rows(db)
        if args.namespace is not None:
            rules = [r for r in rules if r["namespace"] == args.namespace]
        _show_rows(args, rules, columns)
        return EXIT_OK
    policy = {} if args.policy is None else {"policy": args.policy}
    with _open(args, write=True) as db:
        evicted = db.set_capacity(args.max, namespace=args.namespace, **policy)
        rule = next((r for r in _capacity_rows(db) if r["namespace"] == args.namespace), None)
    data = {
        "namespace": args.namespace,
        "max_entries": args.max,
        "policy": None if rule is None else rule["policy"],
        "evicted": evicted,
    }
    _show(args, data)
    return EXIT_OK


# -- reading ------------------------------------------------------------------------------


def _cmd_ask(args: argparse.Namespace) -> int:
    if args.query is None and args.vector is None:
        raise InvalidInputError("ask needs a QUERY text, --vector, or both")
    with _open(args, embed=args.query is not None) as db:
        hits = db.ask(
            args.query,
            vector=args.vector,
            top_k=args.top_k,
            namespace=args.namespace,
            kind=args.kind,
            where=args.where,
            since=args.since,
            until=args.until,
            use_graph=args.graph,
            exact=args.exact,
            explain=args.explain,
        )
    rows = []
    for h in hits:
        row = {"id": h.id, "score": h.score, **_memory_fields(h)}
        if args.explain:
            row["components"] = h.components
        rows.append(row)
    columns = ("id", "score", "kind", "namespace", "text")
    if args.as_json or not args.explain or not rows:
        _show_rows(args, rows, columns)
        return EXIT_OK
    header, *lines = _table_lines(rows, columns)
    print(header)
    for row, line in zip(rows, lines, strict=True):  # each hit's per-signal scores under it
        print(line)
        print("    " + " ".join(f"{k}={_cell(v)}" for k, v in row["components"].items()))
    return EXIT_OK


def _cmd_get(args: argparse.Namespace) -> int:
    with _open(args) as db:
        m = db.get(args.id)
    data = {**_memory_fields(m), "version": m.version}
    if args.with_vector:
        data["vector"] = [float(x) for x in m.vector]
    else:
        data["dim"] = int(m.vector.shape[0])
    _show(args, data)
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    with _open(args) as db:
        versions = db.history(args.id)
    rows = [
        {"seq": v.seq, "at": _iso(v.at), "op": v.op, "version": v.memory.version}
        | _memory_fields(v.memory)
        for v in versions
    ]
    _show_rows(args, rows, ("seq", "at", "op", "version", "importance", "text"))
    return EXIT_OK


def _cmd_neighbors(args: argparse.Namespace) -> int:
    with _open(args) as db:
        found = db.neighbors(
            args.id, depth=args.depth, relation=args.relation, direction=args.direction
        )
        rows = [
            {
                "id": n.id,
                "depth": n.depth,
                "via": n.via,
                "relation": n.relation,
                "weight": n.weight,
                "direction": n.direction,
                "text": db.get(n.id).text,
            }
            for n in found
        ]
    _show_rows(args, rows, ("id", "depth", "via", "relation", "weight", "direction", "text"))
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    output = _Parser(add_help=False)
    mode = output.add_mutually_exclusive_group()
    mode.add_argument(
        "--json", action="store_true", help="JSON (the default when stdout is not a terminal)"
    )
    mode.add_argument(
        "--table", action="store_true", help="the human format (the default on a terminal)"
    )
    parser = _Parser(prog="mnemos", description="Mnemos memory database tools")
    parser.add_argument("--version", action="version", version=f"mnemos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help: str, *, db: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[output])
        if db:
            _add_db(p)
        p.set_defaults(func=func)
        return p

    p = command("init", _cmd_init, "create a database (built-in embedder unless --no-embedder)")
    p.add_argument("--dim", type=_positive_int, help="vector dimension (with --no-embedder)")
    p.add_argument(
        "--no-embedder", action="store_true", help="vector-only: memories come with vectors"
    )

    p = command("remember", _cmd_remember, "store a memory, or one per stdin line; prints ids")
    p.add_argument("text", nargs="?", metavar="TEXT", help="the text ('-' or none: stdin)")
    p.add_argument("--namespace", help="namespace (default 'default')")
    p.add_argument("--kind", help="episodic (default), semantic or procedural")
    p.add_argument("--importance", type=float, help="0 to 1 (default 0.5)")
    p.add_argument("--metadata", type=_json_object, help="a JSON object, e.g. '{\"k\": 1}'")
    p.add_argument("--timestamp", type=_point_arg, help="ISO 8601 or epoch seconds")
    p.add_argument("--id", help="the id (default: assigned, m<seq>)")
    p.add_argument("--vector", type=_json_vector, help="the vector, a JSON list of numbers")
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="stdin lines are JSON objects with remember's fields (text, vector, metadata, ...)",
    )

    p = command("ask", _cmd_ask, "the memories that best match a text and/or a vector")
    p.add_argument("query", nargs="?", metavar="QUERY", help="the question, in words")
    p.add_argument("--vector", type=_json_vector, help="a query vector, a JSON list of numbers")
    p.add_argument("--top-k", type=int, default=5, help="how many (default 5)")
    p.add_argument("--namespace", action="append", help="only this namespace (repeatable)")
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument("--where", type=_json_object, help="a metadata filter, e.g. '{\"k\": 1}'")
    p.add_argument("--since", type=_time_arg, help="from this time (ISO 8601, epoch, or 7d)")
    p.add_argument("--until", type=_time_arg, help="before this time")
    p.add_argument("--graph", action="store_true", help="let links pass score along")
    p.add_argument("--exact", action="store_true", help="exact scan, never the ANN graph")
    p.add_argument("--explain", action="store_true", help="each signal's score")

    p = command("get", _cmd_get, "one memory")
    p.add_argument("id", metavar="ID")
    p.add_argument("--with-vector", action="store_true", help="include the vector")

    p = command("forget", _cmd_forget, "forget memories (all must exist)")
    p.add_argument("ids", nargs="+", metavar="ID")

    p = command("connect", _cmd_connect, "link memory A to memory B")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--relation", default="related", help="default 'related'")
    p.add_argument("--weight", type=float, default=1.0, help="default 1.0")

    p = command("neighbors", _cmd_neighbors, "memories linked to one, breadth first")
    p.add_argument("id", metavar="ID")
    p.add_argument("--depth", type=int, default=1, help="hops (default 1)")
    p.add_argument("--relation", help="only this relation")
    p.add_argument("--direction", default="both", choices=("out", "in", "both"))

    p = command("history", _cmd_history, "every version of a memory, oldest first")
    p.add_argument("id", metavar="ID")

    command("checkpoint", _cmd_checkpoint, "write a snapshot now")

    p = command("compact", _cmd_compact, "drop forgotten memories and old versions")
    p.add_argument(
        "--keep-versions", type=int, default=0, help="old versions kept per memory (default 0)"
    )

    p = command("backup", _cmd_backup, "write a verified, consistent copy of the database")
    p.add_argument("dest", metavar="DEST", help="the copy's directory (new or empty)")
    p.add_argument("--no-verify", action="store_true", help="skip checking the copy")

    p = command(
        "capacity", _cmd_capacity, "show, set or remove a bound on the number of live memories"
    )
    p.add_argument(
        "max",
        nargs="?",
        default=_SHOW,
        type=_capacity_arg,
        metavar="MAX",
        help="live memories kept, or 'none' to remove the bound (omitted: show the bounds)",
    )
    p.add_argument("--namespace", help="bound this namespace (default: the whole database)")
    p.add_argument(
        "--policy", help="what goes first: importance-then-age or least-recently-recalled"
    )

    command("verify", _cmd_verify, "check every log record and snapshot; exit 2 if damaged")

    p = command("repair", _cmd_repair, "back up, then cut the log to its last valid prefix")
    p.add_argument("--yes", action="store_true", help="really repair (otherwise only explain)")
    p.add_argument("--backup", help="where to copy the database first (default DB.bak-TIME)")

    command("stats", _cmd_stats, "counts, sizes and settings of a database")

    p = command("export-replay", _cmd_export_replay, "write the events to a replay log")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--since", type=int, help="first seq (default 1)")
    p.add_argument("--until", type=int, help="last seq (default: the last event)")
    p.add_argument("--namespace", action="append", help="only this namespace (repeatable)")
    p.add_argument("--checkpoint-every", type=int, default=replay.CHECKPOINT_EVERY)

    p = command("replay", _cmd_replay, "replay a log and check it; exit 2 if it diverges", db=False)
    p.add_argument("log", metavar="LOG")
    p.add_argument("--into", help="a new database directory to rebuild (default: in memory)")
    p.add_argument("--no-verify", action="store_true", help="skip digests and checkpoints")
    p.add_argument("--stop-at", type=int, help="stop after this seq")

    p = command(
        "diff", _cmd_diff, "where two replay logs or databases part; exit 4 if they do", db=False
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")

    p = command("log", _cmd_log, "print the events of a database, one a line")
    p.add_argument("--since", type=int, help="first seq (default 1)")
    p.add_argument("--follow", action="store_true", help="keep printing new events (Ctrl-C ends)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between looks (--follow)")
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="mnemos: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else EXIT_USER
    args.as_json = _json_mode(args)
    try:
        code: int = args.func(args)
        return code
    except DatabaseLockedError as exc:
        print(f"mnemos: {_one_line(exc)}", file=sys.stderr)
        return EXIT_LOCKED
    except CorruptDatabaseError as exc:
        print(f"mnemos: {_one_line(exc)}", file=sys.stderr)
        return EXIT_CORRUPT
    except BrokenPipeError:
        # The reader went away (`mnemos log DB | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("mnemos: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MnemosError, OSError) as exc:
        print(f"mnemos: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
