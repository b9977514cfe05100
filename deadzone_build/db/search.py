"""Hybrid search over deadzone.db: FTS5 BM25 and cosine similarity, fused per document with RRF.

    keyword  the query's topical words (db/fusion.py drops "how", "the"...), each an FTS5 phrase
             (user syntax is never parsed), OR-ed, ranked by bm25 over chunk text and headings
             (a heading match weighs HEADING_WEIGHT times a text match)
    vector   the query embedded by the caller's embedder, dot product with every vector of the
             selected libraries (L2-normalised: dot = cosine), numpy over one in-memory matrix
    fused    db/fusion.py: identical chunks of one library across versions become one candidate
             (without --version), documents are ranked by RRF, each document's best chunk first

A word held by MAX_RANKED chunks or more of the searched set is left out of the bm25 side (see
`_affordable_match`): its IDF is near zero and scoring every chunk that holds it would dominate
the latency; the vector side still sees the whole query.

The vector matrix is loaded once per db file (`open_index`) and reused while the file is
unchanged, so repeated queries cost a matrix-vector product, not a table scan.
"""

from __future__ import annotations

import json
from collections import Counter
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from deadzone_build.embed.pin import DIMENSION
from deadzone_build.embed.protocol import TextEmbedder as Embedder
from deadzone_build.db import fusion
from deadzone_build.db.fusion import Candidate, fts_phrases, fts_query  # noqa: F401  (re-exported)
from deadzone_build.db.lib_names import name_score, query_words
from deadzone_build.db.schema import open_checked
from deadzone_build.db.snippet import snippet
from deadzone_build.errors import SelectionError

MIN_DEPTH = 100  # candidates taken from each list before fusion
SECTION_WINDOW = 32  # chunks read per step when a snippet looks back to its section start
MAX_RANKED = 5000  # a phrase matching this many chunks is too common to be worth ranking by bm25
SIGNALS = ("bm25", "vector")
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Hit:
    """One result. `versions` lists every version holding this exact chunk (one entry with
    --version); `version`/`url` are the newest of them. `snippet` is `text` widened to whole lines
    with its code fences balanced (db/snippet.py)."""

    lib_id: str
    version: str
    url: str
    heading_path: list[str]
    score: float
    text: str
    versions: list[str] = field(default_factory=list)
    snippet: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LibHit:
    lib_id: str
    version: str
    description: str
    chunks: int
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Library:
    id: int
    lib_id: str
    version: str
    description: str
    first_row: int  # index into the vector matrix (chunks.id - 1)
    count: int


class SearchIndex:
    """An open deadzone.db with its vectors in memory; safe to query from several threads."""

    def __init__(self, db_path: Path, *, max_ranked: int = MAX_RANKED) -> None:
        self.db_path = Path(db_path)
        self.max_ranked = max_ranked
        self.conn = open_checked(self.db_path)
        self._lock = threading.Lock()  # one sqlite3 connection, shared
        rows = self.conn.execute("SELECT id, lib_id, version, description, first_chunk, chunk_count, vector "
                                 "FROM libraries ORDER BY id").fetchall()
        self.libraries = [_Library(r[0], r[1], r[2], r[3], r[4] - 1, r[5]) for r in rows]
        self._version_count = Counter(x.lib_id for x in self.libraries)  # one version: nothing to collapse
        self.library_vectors = _matrix(r[6] for r in rows)
        self.vectors = _matrix(v for (v,) in self.conn.execute("SELECT vector FROM chunks ORDER BY id"))

    def close(self) -> None:
        self.conn.close()

    # ── chunks ──

    def search(self, query: str, *, embedder: Embedder, lib: str | None = None, version: str | None = None,
               limit: int = 10, signals: Sequence[str] = SIGNALS) -> list[Hit]:
        """The `limit` best chunks. `signals` picks the sides (the bench measures each alone)."""
        _check_query(query, limit)
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise SelectionError(f"signals must be a non-empty subset of {SIGNALS} (got {list(signals)}).")
        libraries = self._select(lib, version)
        depth = max(MIN_DEPTH, limit)
        rankings = []
        if "vector" in signals:
            rankings.append(self._vector_ranking(_query_vector(embedder, query), libraries, depth))
        if "bm25" in signals:
            rankings.append(self._keyword_ranking(query, libraries, depth))
        rows = self._rows({c for ranking in rankings for c in ranking})
        candidates, representative = _candidates(rows, collapse_versions=version is None)
        collapsed = [fusion.collapse(r, candidates, representative) for r in rankings]
        fused = fusion.document_fusion(collapsed, candidates)[:limit]
        return self._hits(fused, rows, collapse_versions=version is None)

    def _select(self, lib: str | None, version: str | None) -> list[_Library]:
        if version is not None and lib is None:
            raise SelectionError("--version needs --lib: name the library whose version you mean.")
        if lib is None:
            return self.libraries
        chosen = [x for x in self.libraries if x.lib_id == lib and (version is None or x.version == version)]
        if not chosen:
            known = sorted({f"{x.lib_id}@{x.version}" if x.version else x.lib_id for x in self.libraries
                            if x.lib_id == lib})
            what = f"{lib} has no version `{version}` in {self.db_path} (it has: {', '.join(known)})" if known \
                else f"no library `{lib}` in {self.db_path}"
            raise SelectionError(f"{what}. Run `deadzone-build libs QUERY` to find the lib_id.")
        return chosen

    def _vector_ranking(self, q: np.ndarray, libraries: list[_Library], depth: int) -> list[int]:
        """Row ids (chunks.id) by descending cosine, ties by id."""
        if len(libraries) == len(self.libraries):
            scores = self.vectors @ q
            rows = np.arange(len(scores))
        else:  # each library's rows are contiguous: score slices, never copy the matrix
            scores = np.concatenate([self.vectors[x.first_row:x.first_row + x.count] @ q for x in libraries])
            rows = np.concatenate([np.arange(x.first_row, x.first_row + x.count) for x in libraries])
        top = np.argpartition(-scores, depth - 1)[:depth] if len(scores) > depth else np.arange(len(scores))
        top = top[np.lexsort((rows[top], -scores[top]))]
        return [int(r) + 1 for r in rows[top]]

    def keyword_ranking(self, query: str, *, lib: str | None = None, version: str | None = None,
                        depth: int = MIN_DEPTH) -> list[int]:
        """chunks.id of the bm25 side alone, best first (what `search` fuses with the vector side)."""
        return self._keyword_ranking(query, self._select(lib, version), depth)

    def _keyword_ranking(self, query: str, libraries: list[_Library], depth: int) -> list[int]:
        """Row ids by bm25 (best first), within each selected library's id range."""
        phrases = fts_phrases(query, drop_function_words=True)
        if not phrases:
            return []
        if len(libraries) == len(self.libraries):
            ranges = [(1, len(self.vectors))]
        else:
            ranges = [(x.first_row + 1, x.first_row + x.count) for x in libraries]
        scored: list[tuple[float, int]] = []
        rank = f"bm25(1.0, {fusion.HEADING_WEIGHT})"  # text, heading_path column weights
        with self._lock:
            for low, high in ranges:
                match = self._affordable_match(phrases, low, high)
                if match:
                    rows = self.conn.execute(
                        "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? AND rank MATCH ? "
                        "AND rowid BETWEEN ? AND ? ORDER BY rank LIMIT ?", (match, rank, low, high, depth)).fetchall()
                    scored.extend((score, rowid) for rowid, score in rows)
        return [rowid for _, rowid in sorted(scored)[:depth]]

    def _affordable_match(self, phrases: list[str], low: int, high: int) -> str:
        """The MATCH expression to rank: phrases found in MAX_RANKED chunks or more are left out.

        FTS5 scores every matching row before sorting (~5 µs each), so a word held by every chunk
        costs ~0.5 s over 100,000 chunks while its IDF is close to zero. When every phrase is that
        common, only chunks holding all of them are ranked, if there are few enough.
        """
        if high - low + 1 < self.max_ranked:
            return " OR ".join(phrases)
        kept = [p for p in phrases if self._matches_at_least(p, low, high) < self.max_ranked]
        if kept:
            return " OR ".join(kept)
        every = " AND ".join(phrases)
        return every if self._matches_at_least(every, low, high) < self.max_ranked else ""

    def _matches_at_least(self, match: str, low: int, high: int) -> int:
        """min(number of rows matching, max_ranked): reads rowids only, stops at the cap."""
        return self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid BETWEEN ? AND ? "
            "LIMIT ?)", (match, low, high, self.max_ranked)).fetchone()[0]

    def _rows(self, ids: set[int]) -> dict[int, tuple]:
        """chunks.id -> (library, lib_id, version, url, heading_path, ordinal, text) of `ids`."""
        if not ids:
            return {}
        with self._lock:
            rows = self.conn.execute(
                f"SELECT id, library, lib_id, version, url, heading_path, ordinal, text FROM chunks WHERE id IN "
                f"({','.join('?' * len(ids))})", sorted(ids)).fetchall()
        return {r[0]: r[1:] for r in rows}

    def _hits(self, fused: list[tuple[int, float]], rows: dict[int, tuple], *, collapse_versions: bool) -> list[Hit]:
        hits = []
        for chunk_id, score in fused:
            library, lib_id, version, url, heading_path, ordinal, text = rows[chunk_id]
            several = collapse_versions and self._version_count[lib_id] > 1
            versions = self._versions_of(lib_id, heading_path, text) if several else [version]
            hits.append(Hit(lib_id=lib_id, version=version, url=url, heading_path=json.loads(heading_path),
                            score=score, text=text, versions=versions,
                            snippet=self._snippet(library, url, heading_path, ordinal, text)))
        return hits

    def _versions_of(self, lib_id: str, heading_path: str, text: str) -> list[str]:
        with self._lock:
            found = [v for (v,) in self.conn.execute(
                "SELECT DISTINCT version FROM chunks WHERE lib_id = ? AND heading_path = ? AND text = ?",
                (lib_id, heading_path, text))]
        return sorted(found, key=_version_key, reverse=True)

    def _snippet(self, library: int, url: str, heading_path: str, ordinal: int, text: str) -> str:
        """`text` widened with its section neighbours (same url and heading path, adjacent ordinals):
        every chunk back to the section start (the fence state depends on them), one forwards."""
        low = ordinal
        before: list[str] = []
        while True:  # a window at a time: sections are rarely longer than one
            high, low = low - 1, max(0, low - SECTION_WINDOW)
            with self._lock:
                run = self.conn.execute(
                    "SELECT url, heading_path, text FROM chunks WHERE library = ? AND ordinal BETWEEN ? AND ? "
                    "ORDER BY ordinal DESC", (library, low, high)).fetchall()
            for row_url, row_path, row_text in run:
                if row_url != url or row_path != heading_path:
                    break
                before.append(row_text)
            else:
                if low > 0 and run:
                    continue
            break
        with self._lock:
            nxt = self.conn.execute("SELECT url, heading_path, text FROM chunks WHERE library = ? AND ordinal = ?",
                                    (library, ordinal + 1)).fetchone()
        after = [nxt[2]] if nxt is not None and nxt[0] == url and nxt[1] == heading_path else []
        return snippet(text, before[::-1], after)

    # ── libraries ──

    def libs(self, query: str, *, embedder: Embedder, limit: int = 10) -> list[LibHit]:
        """Libraries ranked by their library vector and by how well their lib_id matches the query words."""
        _check_query(query, limit)
        q = _query_vector(embedder, query)
        scores = self.library_vectors @ q
        by_vector = sorted(range(len(self.libraries)), key=lambda i: (-scores[i], i))
        words = query_words(query)
        name_scores = [name_score(x.lib_id, words) for x in self.libraries]
        by_name = sorted((i for i, s in enumerate(name_scores) if s > 0), key=lambda i: (-name_scores[i], i))
        fused = sorted(fusion.rrf([by_vector, by_name]).items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [LibHit(lib_id=self.libraries[i].lib_id, version=self.libraries[i].version,
                       description=self.libraries[i].description, chunks=self.libraries[i].count, score=score)
                for i, score in fused]


def _candidates(rows: dict[int, tuple], *, collapse_versions: bool) -> tuple[dict[int, Candidate], dict]:
    """Fusion's view of each row, and the representative chunk of each same-text group (the newest
    version's; with --version every chunk is its own group)."""
    candidates = {}
    representative: dict = {}
    for chunk_id in sorted(rows):
        _, lib_id, version, url, heading_path, _, text = rows[chunk_id]
        same = (lib_id, heading_path, text) if collapse_versions else chunk_id
        current = representative.get(same)
        if current is None or _version_key(version) > _version_key(rows[current][2]):
            representative[same] = chunk_id
        candidates[chunk_id] = Candidate(id=chunk_id, document=url, same_text=same)
    return candidates, representative


def _version_key(version: str) -> tuple:
    """Natural order: "1.10" after "1.9", "2026.4" after "2026.3"."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _NUMBER.split(version) if p)


def _matrix(blobs) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, DIMENSION)


def _query_vector(embedder: Embedder, query: str) -> np.ndarray:
    return np.asarray(embedder.embed([query]), dtype=np.float32).reshape(-1, DIMENSION)[0]


def _check_query(query: str, limit: int) -> None:
    if not query.strip():
        raise SelectionError("the query is empty. Pass the words to search for, e.g. "
                             "`deadzone-build search \"http router middleware\"`.")
    if limit < 1:
        raise SelectionError(f"--limit must be at least 1 (got {limit}).")


# ── one index per db file, reused while the file is unchanged ───────────────
#
# An index that leaves the cache (its file changed, or a third db was opened) is never closed
# here: another caller (a server thread, a test) may still hold it and be mid-query. Its sqlite3
# connection closes when the last reference goes (CPython frees it at once).

_cache: dict[Path, tuple[tuple[int, int, int], SearchIndex]] = {}
_cache_lock = threading.Lock()
MAX_CACHED = 2


def open_index(db_path: Path) -> SearchIndex:
    """The SearchIndex of `db_path`, loaded once and reloaded when the file changes.

    Shared: callers must not close it (an index dropped from the cache closes with its last user).
    """
    path = Path(db_path).resolve()
    try:
        st = path.stat()
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        signature = (0, 0, 0)  # open_checked raises the helpful error
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        index = SearchIndex(path)
        _cache.pop(path, None)
        while len(_cache) >= MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[path] = (signature, index)
        return index


def search(db_path: Path, query: str, *, embedder: Embedder, lib: str | None = None, version: str | None = None,
           limit: int = 10) -> list[Hit]:
    """The `limit` best chunks for `query` in `db_path`, optionally within one library (and version)."""
    return open_index(db_path).search(query, embedder=embedder, lib=lib, version=version, limit=limit)


def libs(db_path: Path, query: str, *, embedder: Embedder, limit: int = 10) -> list[LibHit]:
    """The `limit` libraries of `db_path` that best match `query`."""
    return open_index(db_path).libs(query, embedder=embedder, limit=limit)
