"""Old files stay readable: the golden database of every format version opens, verifies
and gives the state it was written with, and today's writer still writes the same v1
records (so a format change cannot slip in unnoticed)."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import mnemos
from mnemos import MemoryNotFound, Mnemos
from mnemos import format as fmt
from mnemos.snapshot import read_snapshot_header

DATA = Path(__file__).resolve().parent / "data"
RECORD = struct.Struct("<IIQIIII")  # FORMAT.md "Record"
GOLDEN = sorted(p for p in DATA.glob("v*.mem") if p.is_dir())


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_format_version_has_a_golden_database():
    assert [p.name for p in GOLDEN][-1] == f"v{mnemos.FORMAT_VERSION}.mem"


def _section_kinds(snap: Path) -> list[int]:
    with open(snap, "rb") as f:
        _seq, _crc, sections = read_snapshot_header(f)
    return [kind for kind, *_rest in sections]


def test_lexical_section_golden_reads_as_stored_and_matches_a_rebuild():
    """v1-lexical.mem's snapshots carry the LEXICAL section (v1.mem's predate it and are
    re-indexed from their texts): both answer text queries identically, and the stored
    postings are used as they are, not rebuilt."""
    lexical = DATA / "v1-lexical.mem"
    for snap in sorted((lexical / "snapshots").iterdir()):
        assert fmt.SECTION_LEXICAL in _section_kinds(snap)
    for snap in sorted((DATA / "v1.mem" / "snapshots").iterdir()):
        assert fmt.SECTION_LEXICAL not in _section_kinds(snap)
    with (
        Mnemos.open(lexical, embedder=None, readonly=True) as new,
        Mnemos.open(DATA / "v1.mem", embedder=None, readonly=True) as old,
    ):
        assert len(new._state.lexical.dirty) < len(old._state.lexical.dirty)
        for query in ("green tea", "note 7", "again", "ключ"):
            kept = [(h.id, h.score) for h in new.ask(query, top_k=10)]
            assert kept == [(h.id, h.score) for h in old.ask(query, top_k=10)]
        assert new.ask("green tea", top_k=1)[0].id == "m2"


def test_ann_section_golden_reads_as_stored_and_continues_the_same_graph(tmp_path, monkeypatch):
    """v1-ann.mem's newer snapshot holds a started graph, operations queued after it and a
    vector an insert kept: it decodes and encodes back to the same bytes, and (on the Rust
    backend) the graph it continues is the one a fresh run of the same events builds."""
    from mnemos.index import ann
    from mnemos.snapshot import load_snapshot

    golden = DATA / "v1-ann.mem"
    older, newer = sorted((golden / "snapshots").iterdir())
    assert fmt.SECTION_ANN in _section_kinds(older)
    assert fmt.SECTION_ANN_GRAPH not in _section_kinds(older)
    assert {fmt.SECTION_ANN, fmt.SECTION_ANN_GRAPH} <= set(_section_kinds(newer))
    for snap in (DATA / "v1-lexical.mem" / "snapshots").iterdir():
        assert fmt.SECTION_ANN not in _section_kinds(snap)
    assert load_snapshot(str(older))[0].ann is None  # 5 memories: not started
    state, _crc = load_snapshot(str(newer))
    stored = state.ann
    assert stored is not None and stored.pending > 0 and stored._saved
    assert stored._graph_bytes is not None
    with open(newer, "rb") as f:
        _seq, _crc, sections = read_snapshot_header(f)
        raw = {}
        for kind, _codec, offset, size, _raw, _sc in sections:
            f.seek(offset)
            raw[kind] = f.read(size)
    section, graph = stored.encode()
    assert b"".join(bytes(p) for p in section) == raw[fmt.SECTION_ANN]
    assert bytes(graph) == raw[fmt.SECTION_ANN_GRAPH]

    maker = _load_maker()
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", maker.ANN_GOLDEN_ROWS)
    digest = maker.build(tmp_path / "fresh.mem", ann=True)
    assert digest == (DATA / "v1-ann.state_hash").read_text().strip()
    assert _records(tmp_path / "fresh.mem" / "wal") == _records(golden / "wal")
    if ann.available():
        with (
            Mnemos.open(golden, embedder=None, readonly=True, ann_background=False) as old,
            Mnemos.open(
                tmp_path / "fresh.mem", embedder=None, readonly=True, ann_background=False
            ) as new,
        ):
            graphs = [db._state.ann.ready(db._state.vectors).to_bytes() for db in (old, new)]
            assert graphs[0] == graphs[1]
            query = maker.vector(9)
            assert [h.id for h in old.ask(vector=query, top_k=5)] == [
                h.id for h in new.ask(vector=query, top_k=5)
            ]


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
@pytest.mark.parametrize("readonly", [True, False])
def test_golden_database_opens_to_its_recorded_state(golden: Path, readonly: bool, tmp_path):
    copy = tmp_path / golden.name
    shutil.copytree(golden, copy)
    expected = (DATA / golden.name.replace(".mem", ".state_hash")).read_text().strip()
    with Mnemos.open(copy, embedder=None, readonly=readonly) as db:
        assert db.state_hash() == expected
        assert db.stats()["memories"] > 0


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden_database_verifies_clean(golden: Path):
    report = mnemos.verify(golden)
    assert report.ok and not report.problems, report.to_dict()
    assert report.first_seq == 1 and len(report.snapshots) == 2


def test_v1_contents():
    with Mnemos.open(DATA / "v1.mem", embedder=None, readonly=True) as db:
        tea = db.get("m2")
        assert tea.text == "the user prefers green tea"
        assert tea.metadata == {"tags": ["drink", 1, 2.5, None, True], "topic": "prefs"}
        assert tea.importance == 0.75 and tea.version == 2
        assert [v.op for v in db.history("m2")] == ["remember", "update"]
        assert [v.op for v in db.history("m4")] == ["remember", "forget", "remember"]
        assert db.get("m6").metadata == {"ключ": {"n": 8}}
        with pytest.raises(MemoryNotFound):
            db.get("ada")
        assert [(n.id, n.relation, n.weight) for n in db.neighbors("m2")] == [("m3", "caused", 0.5)]
        # The stored vector and its norm survive, so similarity is exact; importance
        # 0.75 lifts the score by 5%.
        hit = db.ask(vector=tea.vector, top_k=1, explain=True)[0]
        assert hit.id == "m2" and hit.components is not None
        assert hit.components["vector"] == pytest.approx(1.0, abs=1e-6)
        assert hit.score == pytest.approx(1.05, abs=1e-6)
        assert np.isfinite([h.score for h in db.ask(vector=tea.vector, top_k=50)]).all()


def _records(wal: Path) -> list[tuple[str, int, int, int, int, bytes]]:
    """Each record of a log as (segment name, seq, prev link present, txn_index,
    txn_count, payload): everything but the per-segment random salt and the CRCs and
    unsynced counts it does not decide."""
    out = []
    for segment in sorted(wal.iterdir()):
        data = segment.read_bytes()
        pos = 32
        while pos < len(data):
            _crc, length, seq, _prev, index, count, _unsynced = RECORD.unpack_from(data, pos)
            out.append(
                (segment.name, seq, index, count, length, data[pos + 32 : pos + 32 + length])
            )
            pos += 32 + length
    return out


@pytest.mark.parametrize("version", [1, 2])
def test_todays_writer_reproduces_each_versions_log(tmp_path, version):
    """A database that uses nothing of format 2 is still written as version 1, byte for
    byte; one that does is upgraded to 2 when it first needs it."""
    maker = _load_maker()
    digest = maker.build(tmp_path / "fresh.mem", v2=version == 2)
    golden = DATA / f"v{version}.mem"
    assert digest == (DATA / f"v{version}.state_hash").read_text().strip()
    assert _records(tmp_path / "fresh.mem" / "wal") == _records(golden / "wal")
    assert (tmp_path / "fresh.mem" / "MNEMOS").read_bytes() == (golden / "MNEMOS").read_bytes()


def test_v2_contents():
    """v2.mem: format 2 in its MNEMOS file and in the snapshot that holds its capacity
    rule (the older one predates it and stays version 1); evictions in history."""
    golden = DATA / "v2.mem"
    assert struct.unpack_from("<I", (golden / "MNEMOS").read_bytes(), 8)[0] == 2
    versions = [
        struct.unpack_from("<I", snap.read_bytes(), 8)[0]
        for snap in sorted((golden / "snapshots").iterdir())
    ]
    assert versions == [1, 2]
    with Mnemos.open(golden, embedder=None, readonly=True) as db:
        stats = db.stats()
        assert stats["format_version"] == 2 and stats["memories"] == 40
        assert stats["capacity"] == [
            {"namespace": None, "max_entries": 40, "policy": "importance-then-age"}
        ]
        evicted = [
            mid
            for mid in db._state.ids
            if db._state.dseqs[db._state.rows[mid]] and db.history(mid)[-1].op == "evict"
        ]
        assert len(evicted) == stats["evicted"] == 8
        texts = {db.history(mid)[-1].memory.text for mid in evicted}
        assert "note 3" in texts  # lowered to importance 0.05, so the first to go
        assert "over the bound" not in texts  # importance 0.9
        # The "work" rule (2, least recently recalled) took the oldest of a batch of three.
        assert "work 0" in texts and not {"work 1", "work 2"} & texts


def test_replay_log_golden_replays_to_its_recorded_state(tmp_path):
    """tests/data/replay-v1.log (v1.mem exported, checkpoints every 10 events) replays, in
    memory and into a new database, to v1.mem's state with every checkpoint verified."""
    log = DATA / "replay-v1.log"
    expected = (DATA / "v1.state_hash").read_text().strip()
    report = Mnemos.replay(log)
    assert report.ok and report.complete and report.checkpoints_verified == 6
    assert report.state_hash == expected
    report = Mnemos.replay(log, into=tmp_path / "again.mem")
    assert report.ok
    with Mnemos.open(tmp_path / "again.mem", embedder=None) as db:
        assert db.state_hash() == expected


def test_trace_golden_reads_replays_and_is_reproduced(tmp_path):
    """v1-trace.mem holds a TRACE file of four asks and replay-v1-trace.log its replay
    log: the traces decode, asking again gives the recorded hits, the log replays with
    every trace verified, and today's traced writer writes the same events and traces."""
    from mnemos import trace

    golden = DATA / "v1-trace.mem"
    expected = (DATA / "v1-trace.state_hash").read_text().strip()
    stored, end = trace.read(str(golden / "TRACE"))
    assert len(stored) == 4 and end == (golden / "TRACE").stat().st_size
    assert [t["query"] for t in stored] == [None, "payment provider", None, "note"]
    assert all(t["hits"] for t in stored)
    report = Mnemos.replay(DATA / "replay-v1-trace.log")
    assert report.ok and report.complete and report.state_hash == expected
    assert report.traces_verified == 4 and report.traces_skipped == 0

    maker = _load_maker()
    assert maker.build(tmp_path / "fresh.mem", trace=True) == expected
    assert _records(tmp_path / "fresh.mem" / "wal") == _records(golden / "wal")
    fresh, _end = trace.read(str(tmp_path / "fresh.mem" / "TRACE"))
    assert [(t["after"], t["params"], t["path"]) for t in fresh] == [
        (t["after"], t["params"], t["path"]) for t in stored
    ]
    for new, old in zip(fresh, stored, strict=True):
        assert [hit[0] for hit in new["hits"]] == [hit[0] for hit in old["hits"]]
        assert [hit[1] for hit in new["hits"]] == pytest.approx([hit[1] for hit in old["hits"]])
