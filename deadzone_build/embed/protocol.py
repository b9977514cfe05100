"""What the pipeline, the vector cache and search need from an embedder (the product Embedder,
or a test double): texts in, float32 [len(texts), DIMENSION] out, in input order."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...
