"""Hybrid search over deadzone.db: FTS5 BM25 and cosine similarity, fused with Reciprocal Rank Fusion.

    keyword  the query's whitespace-separated words, each an FTS5 phrase (user syntax is never parsed),
             OR-ed, ranked by bm25 over chunk text and headings
    vector   the query embedded by the caller's embedder, dot product with every vector of the
             selected libraries (L2-normalised: dot = cosine), numpy over one in-memory matrix
    fused    score(chunk) = sum over both lists of 1 / (RRF_K + rank), rank from 1

A word held by MAX_RANKED chunks or more of the searched set is left out of the bm25 side (see
`_affordable_match`): its IDF is near zero and scoring every chunk that holds it would dominate
the latency; the vector side still sees the whole query.

MiniLM is weak on exact API names and BM25 on paraphrase; RRF needs no score calibration between
the two. The vector matrix is loaded once per db file (`open_index`) and reused while the file is
unchanged, so repeated queries cost a matrix-vector product, not a table scan.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
import numpy as np

from deadzone_build.embed.pin import DIMENSION
from deadzone_build.embed.protocol import TextEmbedder as Embedder
from deadzone_build.db.schema import open_checked
from deadzone_build.errors import SelectionError

RRF_K = 60
MIN_DEPTH = 100  # candidates taken from each list before fusion
MAX_QUERY_TERMS = 32
MAX_RANKED = 5000  # a phrase matching this many chunks is too common to be worth ranking by bm25
_WORD = re.compile(r"\w", re.UNICODE)
_NAME_SPLIT = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Hit:
    lib_id: str
    version: str
    url: str
    heading_path: list[str]
    score: float
    text: str

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


def fts_phrases(text: str) -> list[str]:
    """Every whitespace-separated word of `text` as a quoted FTS5 phrase (duplicates dropped).

    Quoting makes operators, parentheses, `*`, `:` and stray quotes plain text; `foo.bar(x)`
    becomes the phrase "foo bar x", which ranks an exact API mention first.
    """
    words = dict.fromkeys(w for w in text.split() if _WORD.search(w))
    return ['"' + w.replace('"', '""') + '"' for w in list(words)[:MAX_QUERY_TERMS]]


def fts_query(text: str) -> str:
    """A safe FTS5 MATCH expression: the phrases of `text` OR-ed; "" when nothing is left."""
    return " OR ".join(fts_phrases(text))


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
        self.library_vectors = _matrix(r[6] for r in rows)
        self.vectors = _matrix(v for (v,) in self.conn.execute("SELECT vector FROM chunks ORDER BY id"))

    def close(self) -> None:
        self.conn.close()

    # ── chunks ──

    def search(self, query: str, *, embedder: Embedder, lib: str | None = None, version: str | None = None,
               limit: int = 10) -> list[Hit]:
        _check_query(query, limit)
        libraries = self._select(lib, version)
        depth = max(MIN_DEPTH, limit)
        query_vector = _query_vector(embedder, query)
        ranked = [self._vector_ranking(query_vector, libraries, depth),
                  self._keyword_ranking(query, libraries, depth)]
        fused = _rrf(ranked)[:limit]
        return self._hits(fused)

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
        phrases = fts_phrases(query)
        if not phrases:
            return []
        if len(libraries) == len(self.libraries):
            ranges = [(1, len(self.vectors))]
        else:
            ranges = [(x.first_row + 1, x.first_row + x.count) for x in libraries]
        scored: list[tuple[float, int]] = []
        with self._lock:
            for low, high in ranges:
                match = self._affordable_match(phrases, low, high)
                if match:
                    rows = self.conn.execute(
                        "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                        "AND rowid BETWEEN ? AND ? ORDER BY rank LIMIT ?", (match, low, high, depth)).fetchall()
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

    def _hits(self, fused: list[tuple[int, float]]) -> list[Hit]:
        if not fused:
            return []
        ids = [i for i, _ in fused]
        with self._lock:
            rows = self.conn.execute(
                f"SELECT id, lib_id, version, url, heading_path, text FROM chunks WHERE id IN "
                f"({','.join('?' * len(ids))})", ids).fetchall()
        by_id = {r[0]: r for r in rows}
        return [Hit(lib_id=by_id[i][1], version=by_id[i][2], url=by_id[i][3],
                    heading_path=json.loads(by_id[i][4]), score=score, text=by_id[i][5]) for i, score in fused]

    # ── libraries ──

    def libs(self, query: str, *, embedder: Embedder, limit: int = 10) -> list[LibHit]:
        """Libraries ranked by their library vector and by how well their lib_id matches the query words."""
        _check_query(query, limit)
        q = _query_vector(embedder, query)
        scores = self.library_vectors @ q
        by_vector = sorted(range(len(self.libraries)), key=lambda i: (-scores[i], i))
        words = {w for w in _NAME_SPLIT.split(query.lower()) if w}
        name_scores = [_name_score(x.lib_id, words) for x in self.libraries]
        by_name = sorted((i for i, s in enumerate(name_scores) if s > 0), key=lambda i: (-name_scores[i], i))
        fused = _rrf([by_vector, by_name])[:limit]
        return [LibHit(lib_id=self.libraries[i].lib_id, version=self.libraries[i].version,
                       description=self.libraries[i].description, chunks=self.libraries[i].count, score=score)
                for i, score in fused]


def _name_score(lib_id: str, words: set[str]) -> float:
    """How well the query words name the library. Only the project (last segment) counts: an org
    like `go-chi` would otherwise make every query that says "go" rank /go-chi/chi first."""
    project = lib_id.lower().rsplit("/", 1)[-1]
    parts = [p for p in _NAME_SPLIT.split(project) if p]
    if not words or not parts:
        return 0.0
    exact = 2.0 if project in words or "".join(sorted(words)) == project else 0.0
    inside = sum(1 for w in words if w not in parts and len(w) >= 3 and any(w in p for p in parts))
    return exact + sum(1.0 for w in words if w in parts) + 0.25 * inside  # ("in" is not a match for "gin")


def _rrf(rankings: list[list[int]]) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


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

_cache: dict[Path, tuple[tuple[int, int, int], SearchIndex]] = {}
_cache_lock = threading.Lock()


def open_index(db_path: Path) -> SearchIndex:
    """The SearchIndex of `db_path`, loaded once and reloaded when the file changes."""
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
        old = _cache.pop(path, None)
        if old is not None:
            old[1].close()
        if len(_cache) >= 2:
            _cache.pop(next(iter(_cache)))[1].close()
        _cache[path] = (signature, index)
        return index


def search(db_path: Path, query: str, *, embedder: Embedder, lib: str | None = None, version: str | None = None,
           limit: int = 10) -> list[Hit]:
    """The `limit` best chunks for `query` in `db_path`, optionally within one library (and version)."""
    return open_index(db_path).search(query, embedder=embedder, lib=lib, version=version, limit=limit)


def libs(db_path: Path, query: str, *, embedder: Embedder, limit: int = 10) -> list[LibHit]:
    """The `limit` libraries of `db_path` that best match `query`."""
    return open_index(db_path).libs(query, embedder=embedder, limit=limit)

