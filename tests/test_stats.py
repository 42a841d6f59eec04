"""stats(): the at-a-glance numbers agree with what was written."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from mnemos import Mnemos


def test_breakdown_by_namespace_and_kind_matches_the_writes(tmp_path: Path):
    rng = random.Random(7)
    live: dict[str, tuple[str, str]] = {}
    forgotten: dict[str, str] = {}
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=4, segment_bytes=4096) as db:
        for i in range(300):
            if live and rng.random() < 0.25:
                mid = rng.choice(sorted(live))
                forgotten[mid] = live.pop(mid)[0]
                db.forget(mid)
            else:
                ns = rng.choice(["a", "b", "c"])
                kind = rng.choice(["episodic", "semantic", "procedural"])
                vector = np.random.default_rng(i).standard_normal(4)
                live[db.remember(f"note {i}", vector=vector, namespace=ns, kind=kind)] = (ns, kind)
            if i == 150:
                checkpoint = db.checkpoint()
        stats = db.stats()
        assert stats["events"] == db.seq
        assert stats["memories"] == len(live) and stats["forgotten"] == len(forgotten)
        for ns in ("a", "b", "c"):
            part = stats["by_namespace"][ns]
            assert part["live"] == sum(1 for n, _k in live.values() if n == ns)
            assert part["forgotten"] == sum(1 for n in forgotten.values() if n == ns)
            for kind, count in part["by_kind"].items():
                assert count == sum(1 for n, k in live.values() if (n, k) == (ns, kind))
        assert sum(stats["by_kind"].values()) == len(live)
        assert stats["indexes"]["vectors"]["rows"] == len(live) + len(forgotten)
        assert stats["indexes"]["lexical"]["documents"] == len(live)
        assert stats["last_checkpoint"]["seq"] == checkpoint
        assert stats["last_checkpoint"]["bytes"] > 0
        db.compact()
        after = db.stats()
        assert after["forgotten"] == 0 and after["indexes"]["vectors"]["rows"] == len(live)
        assert after["last_checkpoint"]["seq"] == db.seq
