"""A plain numpy forward pass of all-MiniLM-L6-v2: the fp32 reference the embedder is judged against.

Written from the BERT equations, not from the ONNX graph, so a mistake in the graph builder cannot
hide in both: 6 layers, 12 heads, exact (erf) GELU, LayerNorm eps 1e-12, mean pooling over the
text's own tokens, L2 normalisation. One text at a time, no padding, so no mask is needed.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

LAYERS, HEADS, EPS = 6, 12, 1e-12


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26), below float32 resolution; math.erf per element
    would make the reference take minutes."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class NumpyBert:
    """The weights rearranged once (x @ W.T as contiguous x @ W'), then `vector(ids)` per text."""

    def __init__(self, w: Mapping[str, np.ndarray]) -> None:
        def dense(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return np.ascontiguousarray(w[prefix + ".weight"].T), w[prefix + ".bias"]

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return w[prefix + ".weight"], w[prefix + ".bias"]

        e = "embeddings."
        self.word = w[e + "word_embeddings.weight"]
        self.position = w[e + "position_embeddings.weight"]
        self.token_type = w[e + "token_type_embeddings.weight"][0]
        self.embedding_norm = norm(e + "LayerNorm")
        self.layers = []
        for n in range(LAYERS):
            p = f"encoder.layer.{n}."
            self.layers.append({
                "q": dense(p + "attention.self.query"), "k": dense(p + "attention.self.key"),
                "v": dense(p + "attention.self.value"), "o": dense(p + "attention.output.dense"),
                "norm1": norm(p + "attention.output.LayerNorm"), "ffn_in": dense(p + "intermediate.dense"),
                "ffn_out": dense(p + "output.dense"), "norm2": norm(p + "output.LayerNorm"),
            })

    @staticmethod
    def _layer(x: np.ndarray, p: dict) -> np.ndarray:
        seq, hidden = x.shape
        d = hidden // HEADS
        q, k, v = ((x @ p[m][0] + p[m][1]).reshape(seq, HEADS, d).transpose(1, 0, 2) for m in "qkv")
        context = (_softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d)) @ v).transpose(1, 0, 2).reshape(seq, hidden)
        x = _layer_norm(x + context @ p["o"][0] + p["o"][1], *p["norm1"])
        ffn = _gelu(x @ p["ffn_in"][0] + p["ffn_in"][1]) @ p["ffn_out"][0] + p["ffn_out"][1]
        return _layer_norm(x + ffn, *p["norm2"])

    def vector(self, ids: Sequence[int]) -> np.ndarray:
        """The L2-normalised mean-pooled vector of one tokenised text (ids include [CLS] and [SEP])."""
        ids = np.asarray(ids)
        x = _layer_norm(self.word[ids] + self.position[: len(ids)] + self.token_type, *self.embedding_norm)
        for p in self.layers:
            x = self._layer(x, p)
        pooled = x.astype(np.float64).mean(0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)


def reference_vectors(id_lists: Sequence[Sequence[int]], w: Mapping[str, np.ndarray]) -> np.ndarray:
    """One reference vector per tokenised text, float32 [n, 384]."""
    model = NumpyBert(w)
    return np.stack([model.vector(ids) for ids in id_lists]) if id_lists else np.zeros((0, 384), np.float32)
