"""A tiny random BERT checkpoint and a plain numpy forward pass to check the ONNX one against.

The checkpoint has the files and tensor names of all-MiniLM-L6-v2 (model.safetensors,
config.json, tokenizer.json) at a size that builds and runs in milliseconds, so the
conversion, caching and inference code is tested without the 90 MB model.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

HIDDEN = 32
LAYERS = 2
HEADS = 4
INTERMEDIATE = 64
MAX_POSITIONS = 512  # more than 256, so the 256-token truncation is observable
EPS = 1e-12

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "a",
    "an",
    "we",
    "user",
    "agent",
    "memory",
    "database",
    "event",
    "log",
    "replay",
    "vector",
    "search",
    "time",
    "deploy",
    "chose",
    "stripe",
    "for",
    "payments",
    "what",
    "did",
    "prefers",
    "tea",
    "coffee",
    "is",
    "of",
    "and",
    "to",
    "in",
]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB = [
    *SPECIALS,
    *WORDS,
    *LETTERS,
    *("##" + c for c in LETTERS),
    *"0123456789",
    *".,!?'",
]
CLS_ID, SEP_ID = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")

_DTYPE_CODES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<f8"): "F64",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
    np.dtype("u1"): "U8",
}


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], dtypes: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` in the safetensors format: u64 LE header length, JSON header, data.

    ``dtypes`` overrides the recorded dtype code of raw arrays (``"BF16"`` for uint16 bits).
    """
    dtypes = dtypes or {}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        code = dtypes.get(name) or _DTYPE_CODES[arr.dtype]
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)  # the reference writer pads to 8 bytes; readers must cope
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights under HF BertModel's tensor names, plus the unused extras
    (position_ids, pooler) a real checkpoint carries."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {
            prefix + ".weight": (1.0 + normal(HIDDEN, scale=0.1)),
            prefix + ".bias": normal(HIDDEN, scale=0.1),
        }

    def linear(prefix: str, n_in: int, n_out: int) -> dict[str, np.ndarray]:
        return {
            prefix + ".weight": normal(n_out, n_in, scale=1 / math.sqrt(n_in)),
            prefix + ".bias": normal(n_out, scale=0.1),
        }

    w: dict[str, np.ndarray] = {
        "embeddings.position_ids": np.arange(MAX_POSITIONS, dtype=np.int64)[None, :],
        "embeddings.word_embeddings.weight": normal(len(VOCAB), HIDDEN),
        "embeddings.position_embeddings.weight": normal(MAX_POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
        **norm("embeddings.LayerNorm"),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            w.update(linear(p + "attention.self." + name, HIDDEN, HIDDEN))
        w.update(linear(p + "attention.output.dense", HIDDEN, HIDDEN))
        w.update(norm(p + "attention.output.LayerNorm"))
        w.update(linear(p + "intermediate.dense", HIDDEN, INTERMEDIATE))
        w.update(linear(p + "output.dense", INTERMEDIATE, HIDDEN))
        w.update(norm(p + "output.LayerNorm"))
    w.update(linear("pooler.dense", HIDDEN, HIDDEN))
    return w


def write_tiny_model(directory: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny checkpoint to ``directory``; return its weights."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    directory.mkdir(parents=True, exist_ok=True)
    weights = tiny_weights(seed)
    write_safetensors(directory / "model.safetensors", weights)
    config = {
        "architectures": ["BertModel"],
        "hidden_act": "gelu",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": EPS,
        "max_position_embeddings": MAX_POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": 2,
        "vocab_size": len(VOCAB),
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    # What the real model's tokenizer.json ships, and the embedder must override.
    tok.enable_truncation(max_length=128)
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    tok.save(str(directory / "tokenizer.json"))
    return weights


# --- the reference forward pass (float64, one unpadded sequence at a time) ----------------

_erf = np.vectorize(math.erf)


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w[prefix + ".weight"] + w[prefix + ".bias"]


def _linear(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def reference_embedding(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """What sentence-transformers computes for one sentence: BertModel, mean, L2-normalise."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n = len(ids)
    d = HIDDEN // HEADS
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w, "embeddings.LayerNorm")

    def heads(x: np.ndarray, prefix: str) -> np.ndarray:
        return _linear(x, w, prefix).reshape(n, HEADS, d).transpose(1, 0, 2)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (heads(x, p + "attention.self." + name) for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        x = _layer_norm(
            _linear(ctx, w, p + "attention.output.dense") + x, w, p + "attention.output.LayerNorm"
        )
        h = _linear(x, w, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
        x = _layer_norm(_linear(h, w, p + "output.dense") + x, w, p + "output.LayerNorm")
    mean = x.mean(0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)
