"""Open-time and throughput benchmarks for Mnemos, in one command: ``python -m startup_bench``.

What it measures (DESIGN.md "Targets"):

- ``import mnemos`` and ``Mnemos.open(path)`` call-to-ready, each in a fresh process, for
  databases of 1k, 10k and 100k memories: once with a snapshot taken right after seeding
  and once with no snapshot (every event replayed from the log, giving the replay rate);
- write throughput on a fresh database: ``remember`` under durability "full" and "normal",
  ``remember_many`` in batches of 1000;
- exact ``ask(vector=..., top_k=10)`` latency, warm and in-process.

``python -m startup_bench --ask-modes`` (or ``python -m startup_bench.ask_modes``) measures
instead ``ask`` latency by retrieval mode (vector, lexical, hybrid, filtered, graph) at 10k
and 100k memories, ``ask_many`` throughput and the first ask after open.
``python -m startup_bench --embed`` (or ``python -m startup_bench.embed``) measures the
built-in embedder: sentences/s by batch size and the cold first embedding.
``python -m startup_bench --backends`` (or ``python -m startup_bench.backends``) sets the
Rust core against the Python path: log replay and decode rates at 100k and 1M events,
exact top-10 latency, int8 search memory, recall and latency.

Seeded databases are kept in ``--dir`` and reused when they match, so reruns are fast.
Only the standard library, numpy and mnemos are used.
"""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
