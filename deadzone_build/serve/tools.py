"""The two MCP tools as plain functions over an open SearchIndex: deadzone's contract, our extras.

    search_docs(index, embedder, query, lib_id=None, version=None, tokens=None)
        -> {"snippets": [{lib_id, version, title, content, url, heading_path, versions, tokens,
                          truncated, score}]}
    search_libraries(index, embedder, name=None, limit=None)
        -> {"libraries": [{lib_id, version, doc_count, match_score, description, chunk_count,
                           documents, tokens}]}

Arguments and defaults are deadzone's (`cmd/deadzone/server.go`): `version` needs `lib_id`; a
`tokens` budget under 1000 means the default 5000; at most 10 snippets; `limit` defaults to 10
and is capped at 50; an empty `name` lists the libraries with the most chunks. Both lists are
never null. Bad input raises SelectionError with a message written for the calling agent.

Search is the CLI's hybrid search (`SearchIndex.search`), which already collapses the same chunk
indexed under several versions of a library into one hit labelled with all of them (`versions`,
newest first; `version`/`url` are the newest copy's), so versions do not crowd out other hits.
A snippet's content is the hit's display text (`Hit.snippet`: whole lines, fences balanced).
"""

from __future__ import annotations

import difflib
import weakref
from collections import OrderedDict
from pathlib import PurePosixPath
from threading import Lock
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from deadzone_build.db.search import Hit, SearchIndex
from deadzone_build.embed.protocol import TextEmbedder as Embedder
from deadzone_build.errors import SelectionError
from deadzone_build.serve.budget import count_pieces, cut_to_budget

DEFAULT_TOKENS = 5000
MIN_TOKENS = 1000
MAX_SNIPPETS = 10
DEFAULT_LIBRARIES = 10
MAX_LIBRARIES = 50


class QueryEmbedder:
    """Wraps the model with a small LRU of query vectors: an agent repeats queries, and
    search_libraries reuses the vector the ranking computed to report its cosine."""

    def __init__(self, model: Embedder, size: int = 256) -> None:
        self.model, self.size = model, size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = np.asarray(self.model.embed(missing), dtype=np.float32)
            with self._lock:
                for text, vector in zip(missing, vectors):
                    self._cache[text] = vector
                    while len(self._cache) > self.size:
                        self._cache.popitem(last=False)
        with self._lock:
            for text in texts:
                self._cache.move_to_end(text)
            return np.stack([self._cache[t] for t in texts])


# ── search_docs ──────────────────────────────────────────────────────────────


def search_docs(index: SearchIndex, embedder: Embedder, query: str, lib_id: str | None = None,
                version: str | None = None, tokens: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The best snippets for `query` (within `lib_id`, and `version` of it), cut to the `tokens` budget."""
    query = (query or "").strip()
    lib_id = (lib_id or "").strip() or None
    version = (version or "").strip() or None  # "" is "not given", as deadzone's omitempty
    if version is not None and lib_id is None:
        raise SelectionError(f"version `{version}` was given without lib_id: pass the lib_id whose version you "
                             "mean (call search_libraries to find it), or leave version out.")
    if not query:
        raise SelectionError("query is empty: pass the words or API names to look for, e.g. "
                             "{\"query\": \"persistent flags on a subcommand\", \"lib_id\": \"/spf13/cobra\"}.")
    if lib_id is not None:
        _check_library(index, lib_id, version)
    budget = DEFAULT_TOKENS if tokens is None or tokens < MIN_TOKENS else int(tokens)
    hits = index.search(query, embedder=embedder, lib=lib_id, version=version, limit=MAX_SNIPPETS)
    return {"snippets": _fit(hits, budget)}


def _check_library(index: SearchIndex, lib_id: str, version: str | None) -> None:
    versions = [x.version for x in index.libraries if x.lib_id == lib_id]
    if not versions:
        close = difflib.get_close_matches(lib_id, sorted({x.lib_id for x in index.libraries}), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SelectionError(f"unknown lib_id `{lib_id}`: this index has no such library.{hint} Call "
                             "search_libraries with the library's name to get its exact lib_id (/org/project).")
    if version is not None and version not in versions:
        shown = ", ".join(f"`{v}`" if v else "`` (unversioned)" for v in versions)
        raise SelectionError(f"{lib_id} has no version `{version}` in this index; it has {shown}. "
                             "Pass one of those, or leave version out to search every version.")


def _fit(hits: list[Hit], budget: int) -> list[dict[str, Any]]:
    """Snippets in rank order until the budget is spent; the one that overflows is cut at a boundary."""
    contents = [(hit.snippet or hit.text).strip() for hit in hits]
    sizes = count_pieces(contents)
    snippets: list[dict[str, Any]] = []
    remaining = budget
    for hit, content, size in zip(hits, contents, sizes):
        if remaining <= 0:
            break
        truncated = False
        if size > remaining:
            cut = cut_to_budget(content, remaining)
            if not cut.text:
                break
            content, size, truncated = cut.text, cut.tokens, True
        snippets.append(_snippet(hit, content, size, truncated))
        remaining -= size
        if truncated:  # the budget is spent: what is left would only fit a fragment of the next one
            break
    return snippets


def _snippet(hit: Hit, content: str, tokens: int, truncated: bool) -> dict[str, Any]:
    return {"lib_id": hit.lib_id, "version": hit.version, "title": snippet_title(hit), "content": content,
            "url": hit.url, "heading_path": list(hit.heading_path), "versions": list(hit.versions) or [hit.version],
            "tokens": tokens, "truncated": truncated, "score": round(float(hit.score), 6)}


def snippet_title(hit: Hit) -> str:
    """The heading path ("Guide > Routing > Groups"); a page without headings is titled by its file name."""
    if hit.heading_path:
        return " > ".join(hit.heading_path)
    name = PurePosixPath(urlsplit(hit.url).path).name
    return name or hit.lib_id


# ── search_libraries ─────────────────────────────────────────────────────────


def search_libraries(index: SearchIndex, embedder: Embedder, name: str | None = None,
                     limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Libraries matching `name` (best first), or with the most chunks when `name` is empty."""
    limit = DEFAULT_LIBRARIES if limit is None or limit <= 0 else min(int(limit), MAX_LIBRARIES)
    name = (name or "").strip()
    stats = _library_stats(index)
    if not name:  # deadzone's "what is in here": no embedding, match_score 1.0
        rows = sorted(range(len(index.libraries)),
                      key=lambda n: (-index.libraries[n].count, index.libraries[n].lib_id, index.libraries[n].version))
        return {"libraries": [_library(index, n, 1.0, stats) for n in rows[:limit]]}
    ranked = index.libs(name, embedder=embedder, limit=limit)
    cosines = index.library_vectors @ np.asarray(embedder.embed([name]), dtype=np.float32)[0]
    position = {(x.lib_id, x.version): n for n, x in enumerate(index.libraries)}
    rows = [position[(hit.lib_id, hit.version)] for hit in ranked]
    return {"libraries": [_library(index, n, round(float(cosines[n]), 4), stats) for n in rows]}


def _library(index: SearchIndex, n: int, match_score: float, stats: dict[int, tuple[int, int]]) -> dict[str, Any]:
    row = index.libraries[n]
    documents, tokens = stats.get(row.id, (0, 0))
    return {"lib_id": row.lib_id, "version": row.version, "doc_count": row.count, "match_score": match_score,
            "description": row.description, "chunk_count": row.count, "documents": documents, "tokens": tokens}


_stats: "weakref.WeakKeyDictionary[SearchIndex, dict[int, tuple[int, int]]]" = weakref.WeakKeyDictionary()


def _library_stats(index: SearchIndex) -> dict[int, tuple[int, int]]:
    """libraries.id -> (documents fetched, word pieces indexed), read once per open index."""
    if index not in _stats:
        with index._lock:  # the index's one connection is shared between threads
            rows = index.conn.execute("SELECT id, docs_ok, token_count FROM libraries").fetchall()
        _stats[index] = {r[0]: (r[1], r[2]) for r in rows}
    return _stats[index]


# ── readable text (the `content` beside the structured result) ───────────────


def render_snippets(result: dict[str, list[dict[str, Any]]]) -> str:
    snippets = result["snippets"]
    if not snippets:
        return "No documentation matched. Try other words, or another lib_id (search_libraries lists them)."
    parts = []
    for n, s in enumerate(snippets, start=1):
        where = s["lib_id"] + (f"@{s['version']}" if s["version"] else "")
        also = [v for v in s["versions"] if v != s["version"]]
        header = f"## {n}. {s['title']}  ({where}{', also ' + ', '.join(also) if also else ''})\n{s['url']}"
        parts.append(f"{header}\n\n{s['content']}{' […]' if s['truncated'] else ''}")
    return "\n\n".join(parts)


def render_libraries(result: dict[str, list[dict[str, Any]]]) -> str:
    libraries = result["libraries"]
    if not libraries:
        return "No library matched. Call search_libraries with an empty name to list what the index holds."
    lines = []
    for x in libraries:
        where = x["lib_id"] + (f" (version {x['version']})" if x["version"] else "")
        lines.append(f"- {where}: {x['doc_count']} chunks, match {x['match_score']:.3f}. {x['description']}")
    return "\n".join(lines)
