"""A plain numpy forward pass of all-MiniLM-L6-v2: the fp32 reference the embedder is judged against.

Written from the BERT paper's equations, not from the ONNX graph, so a mistake in the graph builder
cannot hide in both: 6 layers, 12 heads, exact (erf) GELU, LayerNorm eps 1e-12, mean pooling over
the text's own tokens, L2 normalisation. One text at a time, no padding, no mask needed.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

LAYERS, HEADS, EPS = 6, 12, 1e-12
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))


def _linear(x: np.ndarray, w: Mapping[str, np.ndarray], prefix: str) -> np.ndarray:
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _layer(x: np.ndarray, w: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    p = f"encoder.layer.{n}."
    seq, hidden = x.shape
    d = hidden // HEADS
    q, k, v = (_linear(x, w, p + f"attention.self.{m}").reshape(seq, HEADS, d).transpose(1, 0, 2)
               for m in ("query", "key", "value"))
    context = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d)) @ v
    context = context.transpose(1, 0, 2).reshape(seq, hidden)
    x = _layer_norm(x + _linear(context, w, p + "attention.output.dense"),
                    w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
    ffn = _linear(_gelu(_linear(x, w, p + "intermediate.dense")), w, p + "output.dense")
    return _layer_norm(x + ffn, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])


def reference_vector(ids: Sequence[int], w: Mapping[str, np.ndarray]) -> np.ndarray:
    """The L2-normalised mean-pooled vector of one tokenised text (ids include [CLS] and [SEP])."""
    ids = np.asarray(ids)
    e = "embeddings."
    x = (w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][: len(ids)]
         + w[e + "token_type_embeddings.weight"][0])
    x = _layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"])
    for n in range(LAYERS):
        x = _layer(x, w, n)
    pooled = x.mean(0)
    return (pooled / np.linalg.norm(pooled)).astype(np.float32)


def reference_vectors(id_lists: Sequence[Sequence[int]], w: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.stack([reference_vector(ids, w) for ids in id_lists]) if id_lists else np.zeros((0, 384), np.float32)
