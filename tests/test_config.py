"""Open options from the environment: argument > MNEMOS_<OPTION> > default, and a bad
value names its variable and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mnemos import InvalidInputError, Mnemos, MnemosError, trace
from mnemos.config import OPTIONS, env_name


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*OPTIONS, "db"]:
        monkeypatch.delenv(env_name(name), raising=False)


def settings(db: Mnemos) -> dict:
    """The options a handle runs with."""
    writer = db._writer
    return {
        "dim": db._state.dim,
        "durability": db.durability,
        "trace": db._tracer is not None,
        "snapshot_every_events": db._snapshot_every_events,
        "snapshot_every_bytes": db._snapshot_every_bytes,
        "log_retention": db._retention,
        "segment_bytes": None if writer is None else writer.segment_bytes,
        "sync_interval_ms": None if writer is None else writer._sync_interval_s * 1000,
        "ann_background": db._ann_background,
    }


CASES = [
    ("dim", "12", 12),
    ("durability", "normal", "normal"),
    ("trace", "1", True),
    ("trace", "yes", True),
    ("snapshot_every_events", "500", 500),
    ("snapshot_every_events", "none", None),
    ("snapshot_every_bytes", "1048576", 1048576),
    ("log_retention", "delete", "delete"),
    ("segment_bytes", "8192", 8192),
    ("sync_interval_ms", "12.5", 12.5),
    ("ann_background", "false", False),
]


@pytest.mark.parametrize(("option", "text", "value"), CASES)
def test_each_option_comes_from_its_variable(tmp_path, monkeypatch, option, text, value):
    default = OPTIONS[option][1]
    with Mnemos.open(tmp_path / "plain.mem", embedder=None, dim=12 if option == "dim" else 8) as db:
        if option != "ann_background":  # off where the Rust extension is missing
            assert settings(db)[option] == (12 if option == "dim" else default)
    monkeypatch.setenv(env_name(option), text)
    kwargs = {} if option == "dim" else {"dim": 8}
    with Mnemos.open(tmp_path / "env.mem", embedder=None, **kwargs) as db:
        assert settings(db)[option] == value
    # An argument beats the variable.
    given = {"dim": 8, "durability": "off", "trace": False, "snapshot_every_events": 7}
    given |= {"snapshot_every_bytes": 4096, "log_retention": "keep", "segment_bytes": 4096}
    given |= {"sync_interval_ms": 5.0, "ann_background": False}
    with Mnemos.open(
        tmp_path / "arg.mem", embedder=None, **{option: given[option]}, **kwargs
    ) as db:
        assert settings(db)[option] == given[option]


BAD = [
    ("durability", "fast", "must be one of full, normal, off"),
    ("trace", "maybe", "must be True or False"),
    ("snapshot_every_events", "-3", "positive int or None"),
    ("snapshot_every_bytes", "lots", "positive int or None"),
    ("log_retention", "forever", "must be one of keep, delete"),
    ("segment_bytes", "100", "at least 4096"),
    ("sync_interval_ms", "0", "from 0 to 60000"),
    ("sync_interval_ms", "nan", "from 0 to 60000"),
    ("ann_background", "2", "must be True or False"),
    ("dim", "0", "from 1 to"),
]


@pytest.mark.parametrize(("option", "text", "message"), BAD)
def test_a_bad_variable_is_named_and_nothing_is_created(
    tmp_path, monkeypatch, option, text, message
):
    monkeypatch.setenv(env_name(option), text)
    kwargs = {} if option == "dim" else {"dim": 8}
    with pytest.raises(InvalidInputError, match=message) as info:
        Mnemos.open(tmp_path / "db.mem", embedder=None, **kwargs)
    assert env_name(option) in str(info.value)
    assert not (tmp_path / "db.mem").exists()


def test_the_database_path_comes_from_mnemos_db(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError, match="MNEMOS_DB"):
        Mnemos.open(embedder=None, dim=8)
    monkeypatch.setenv("MNEMOS_DB", str(tmp_path / "env.mem"))
    with Mnemos.open(embedder=None, dim=8) as db:
        db.remember("x", vector=np.ones(8, dtype=np.float32))
        assert db.path == str(tmp_path / "env.mem")
    with Mnemos.open(tmp_path / "arg.mem", embedder=None, dim=8) as db:
        assert db.path == str(tmp_path / "arg.mem")


def test_mnemos_trace_reaches_writers_only(tmp_path, monkeypatch):
    path = tmp_path / "db.mem"
    monkeypatch.setenv("MNEMOS_TRACE", "1")
    with Mnemos.open(path, embedder=None, dim=8) as db:
        db.remember("x", vector=np.ones(8, dtype=np.float32))
        db.ask(vector=np.ones(8, dtype=np.float32))
    with Mnemos.open(path, embedder=None, readonly=True) as ro:  # not an error: no trace
        ro.ask(vector=np.ones(8, dtype=np.float32))
    assert len(trace.read(str(path / "TRACE"))[0]) == 1
    with pytest.raises(InvalidInputError, match="writable"):
        Mnemos.open(path, embedder=None, readonly=True, trace=True)


def test_mnemos_model_dir_names_itself_when_it_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("MNEMOS_MODEL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MnemosError, match=f"MNEMOS_MODEL_DIR={tmp_path / 'nowhere'} lacks"):
        Mnemos.open(tmp_path / "db.mem")


def test_a_bad_mnemos_backend_is_named_at_import():
    out = subprocess.run(
        [sys.executable, "-c", "import mnemos"],
        env={**os.environ, "MNEMOS_BACKEND": "fast"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "MNEMOS_BACKEND='fast' is not a backend" in out.stderr


@pytest.mark.parametrize("name", ["readonly", "create"])
def test_intent_flags_are_checked(tmp_path, name):
    with pytest.raises(InvalidInputError, match=f"{name} must be True or False"):
        Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8, **{name: "yes"})
