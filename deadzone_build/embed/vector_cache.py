"""Chunk-level embedding cache: blake3(pin ‖ text) → vector, in one SQLite file per pin.

Rebuilding a library whose docs changed a little re-embeds only the chunks whose text changed.
SQLite (not a file per chunk) because a registry holds hundreds of thousands of chunks, and its
transactions make concurrent doit threads and a Ctrl-C safe: a row is there whole or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

import blake3
import numpy as np

from deadzone_build.embed.pin import DIMENSION
from deadzone_build.embed.protocol import TextEmbedder

_BATCH = 256  # texts per embed call: bounds memory and gives progress ticks


def text_digest(pin_id: str, text: str) -> bytes:
    return blake3.blake3(pin_id.encode() + b"\0" + text.encode("utf-8")).digest()


class VectorCache:
    """Vectors of one embedder pin under `cache_dir/vectors/<pin_id>.sqlite`."""

    def __init__(self, cache_dir: Path, pin_id: str) -> None:
        self.pin_id = pin_id
        self.path = Path(cache_dir) / "vectors" / f"{pin_id}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (digest BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                         " WITHOUT ROWID")

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer thread
            self._local.conn = conn
        return conn

    def get_many(self, digests: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        conn = self._connect()
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            rows = conn.execute(f"SELECT digest, vector FROM vectors WHERE digest IN ({','.join('?' * len(part))})",
                                part)
            for digest, blob in rows:
                vector = np.frombuffer(blob, dtype="<f4")
                if vector.shape == (DIMENSION,):  # a short row is ignored and re-embedded, never trusted
                    found[digest] = vector
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        with self._connect() as conn:
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                             [(d, np.asarray(v, dtype="<f4").tobytes()) for d, v in items.items()])


def embed_cached(texts: Sequence[str], embedder: TextEmbedder, cache: VectorCache,
                 progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Vectors for `texts` in order, embedding only those the cache lacks; returns (vectors, embedded)."""
    digests = [text_digest(cache.pin_id, t) for t in texts]
    known = cache.get_many(digests)
    missing = list(dict.fromkeys(d for d in digests if d not in known))
    text_of = dict(zip(digests, texts))
    if progress:
        progress(len(texts) - len(missing), len(texts))
    for start in range(0, len(missing), _BATCH):
        part = missing[start:start + _BATCH]
        vectors = embedder.embed([text_of[d] for d in part])
        fresh = dict(zip(part, vectors))
        cache.put_many(fresh)
        known.update(fresh)
        if progress:
            progress(len(texts) - len(missing) + start + len(part), len(texts))
    out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
    for i, digest in enumerate(digests):
        out[i] = known[digest]
    return out, len(missing)
