"""Chunk-level embedding cache: blake3(pin ‖ text) → vector, in one SQLite file per pin.

Rebuilding a library whose docs changed a little re-embeds only the chunks whose text changed.
SQLite (not a file per chunk) because a registry holds hundreds of thousands of chunks, and its
transactions make concurrent doit threads and a Ctrl-C safe: a row is there whole or not at all.
Nothing read back is trusted: each row carries a check, and an unreadable file is rebuilt.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import blake3
import numpy as np

from deadzone_build.embed.pin import DIMENSION
from deadzone_build.embed.protocol import TextEmbedder

_BATCH = 256  # texts per embed call: bounds memory and gives progress ticks


def text_digest(pin_id: str, text: str) -> bytes:
    return blake3.blake3(pin_id.encode() + b"\0" + text.encode("utf-8")).digest()


_CHECK_BYTES = 16
_ROW_BYTES = DIMENSION * 4 + _CHECK_BYTES
_OPEN_LOCK = threading.Lock()  # one thread at a time creates, switches to WAL or rebuilds a cache file


def _row_check(digest: bytes, vector: bytes) -> bytes:
    """blake3(text digest ‖ vector bytes), truncated: a flipped byte or a row moved to another key fails it."""
    return blake3.blake3(digest + vector).digest(length=_CHECK_BYTES)


class VectorCache:
    """Vectors of one embedder pin under `cache_dir/vectors/<pin_id>.sqlite`.

    Each row stores its vector followed by a check (`_row_check`): a row that fails it (a flipped
    byte, an old or foreign row) is a miss, re-embedded and replaced. A file SQLite cannot read
    (garbage, truncated) is deleted and rebuilt empty. Either way `log` gets one line saying so.
    """

    def __init__(self, cache_dir: Path, pin_id: str, log: Callable[[str], None] | None = None) -> None:
        self.pin_id = pin_id
        self.path = Path(cache_dir) / "vectors" / f"{pin_id}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log or (lambda line: None)
        self._local = threading.local()
        self._generation = 0  # bumped when the file is rebuilt: every thread reconnects
        with _OPEN_LOCK:
            try:
                self._prepare()
            except sqlite3.DatabaseError as exc:
                self._rebuild(exc)

    def _prepare(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            # journal_mode=WAL needs a moment alone with the file; another process creating the same
            # cache may hold it, and SQLite's busy handler does not cover that call: retry briefly.
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.1)
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (digest BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                         " WITHOUT ROWID")
            conn.execute("SELECT count(*) FROM (SELECT 1 FROM vectors LIMIT 1)").fetchone()
            conn.commit()
        finally:
            conn.close()

    def _rebuild(self, exc: BaseException) -> None:
        """Replace an unreadable cache file by an empty one (caller holds _OPEN_LOCK)."""
        self._log(f"{self.path}: the vector cache is unreadable ({exc}); deleted it and started an empty one "
                  "(its chunks are embedded again)")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._generation += 1
        self._prepare()

    def _connect(self) -> sqlite3.Connection:
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == self._generation:
            return held[1]
        if held is not None:
            held[1].close()
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=True)
        conn.text_factory = bytes  # a damaged row read as TEXT fails its check instead of raising
        self._local.conn = (self._generation, conn)
        return conn

    def _guarded(self, operation: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `operation`; if the file turns out corrupt, rebuild it and run it once more."""
        generation = self._generation
        try:
            return operation(self._connect())
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            with _OPEN_LOCK:
                if generation == self._generation:
                    self._rebuild(exc)
            return operation(self._connect())

    def get_many(self, digests: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        unique = list(dict.fromkeys(digests))

        def read(conn: sqlite3.Connection) -> tuple[dict[bytes, np.ndarray], int]:
            found: dict[bytes, np.ndarray] = {}
            bad = 0
            for start in range(0, len(unique), 500):
                part = unique[start:start + 500]
                rows = conn.execute(
                    f"SELECT digest, vector FROM vectors WHERE digest IN ({','.join('?' * len(part))})", part)
                for digest, blob in rows:
                    blob = bytes(blob)
                    vector_bytes, check = blob[:-_CHECK_BYTES], blob[-_CHECK_BYTES:]
                    if len(blob) != _ROW_BYTES or _row_check(bytes(digest), vector_bytes) != check:
                        bad += 1  # re-embedded and replaced, never trusted
                        continue
                    found[bytes(digest)] = np.frombuffer(vector_bytes, dtype="<f4")
            return found, bad

        found, bad = self._guarded(read)
        if bad:
            self._log(f"{self.path}: {bad} cached vector{'s' * (bad != 1)} failed {'their' if bad != 1 else 'its'} "
                      "check (damaged or from an older build); embedding those chunks again")
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        rows = []
        for digest, vector in items.items():
            data = np.asarray(vector, dtype="<f4").tobytes()
            rows.append((digest, data + _row_check(digest, data)))

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

        self._guarded(write)


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
