"""The embedder pin: everything about the embedding model that changes a vector.

The pin is half of every content key, so it must be cheap to compute (no file I/O) and
canonical. It *declares* the expected blake3 of every model input file; the embedder
verifies the real files against it when it builds or loads the model.

PLACEHOLDER until the embedder issue lands: the embedder module replaces EMBEDDER_PIN
with the real file hashes and settings.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import blake3

EMBEDDER_PIN: dict[str, Any] = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "files": {},
    "max_seq_length": 256,
    "pooling": "mean",
    "normalize": "l2",
    "dimension": 384,
    "graph": "placeholder",
}


def canonical_json(value: Any) -> str:
    """The one serialisation every digest in the project is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pin_dict() -> dict[str, Any]:
    """A copy of the pin, JSON-serialisable."""
    return json.loads(canonical_json(EMBEDDER_PIN))


@lru_cache(maxsize=1)
def pin_id() -> str:
    """blake3 of the canonical pin: names cache/embedder/<pin_id>/ and is stored in dbs."""
    return blake3.blake3(canonical_json(EMBEDDER_PIN).encode()).hexdigest()
