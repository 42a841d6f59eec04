"""Mnemos in one minute: remember, ask by vector, link, update, forget, reopen.

The built-in text embedder arrives in a later release; until then the demo turns text
into vectors itself with feature hashing (words -> 256 buckets), which is enough to
show retrieval working. Run: python examples/demo.py
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import numpy as np

from mnemos import Mnemos

DIM = 256


def hashed(text: str) -> np.ndarray:
    """A bag-of-words vector: each lower-cased word adds 1 to a bucket chosen by its hash."""
    v = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        v[
            int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % DIM
        ] += 1
    return v


NOTES = [
    ("The user prefers tea over coffee in the morning.", "preferences"),
    ("We chose Stripe as the payment provider for the checkout.", "decisions"),
    ("Deploys happen on Tuesdays after the standup.", "process"),
    ("The staging database password rotates every 30 days.", "process"),
    ("The user's daughter is called Ada and likes chess.", "preferences"),
    ("Checkout latency regressed after the payment provider switch.", "incidents"),
]


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "agent.mem"
    with Mnemos.open(path, dim=DIM) as db:
        ids = db.remember_many(
            {"text": text, "vector": hashed(text), "metadata": {"topic": topic}}
            for text, topic in NOTES
        )
        print(f"remembered {len(ids)} memories in one atomic commit (seq {db.seq})")

        question = "which payment provider did we choose?"
        print(f"\nask: {question}")
        for hit in db.ask(vector=hashed(question), top_k=3):
            print(f"  {hit.score:.3f}  {hit.id:>3}  {hit.text}")

        db.connect(ids[1], ids[5], relation="caused")
        print(f"\n{ids[1]} is linked to:", [(n.id, n.relation) for n in db.neighbors(ids[1])])

        db.update(ids[0], text="The user now prefers green tea.", vector=hashed("green tea"))
        print("history of", ids[0], [(v.op, v.memory.text) for v in db.history(ids[0])])

        db.forget(ids[3])
        stats = db.stats()
        print(f"\nlive memories {stats['memories']}, edges {stats['edges']}, seq {stats['seq']}")
        digest = db.state_hash()

    with Mnemos.open(path) as db:  # reopen: the log replays to the same state
        assert db.state_hash() == digest
        print(f"reopened {path}: same state_hash {digest[:16]}...")


if __name__ == "__main__":
    main()
