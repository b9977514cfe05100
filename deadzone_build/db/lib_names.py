"""How well a query names a library: word-boundary matches against the lib_id's project segment.

Only the project (last segment of `/org/project`) counts: an org like `go-chi` would otherwise
make every query that says "go" rank /go-chi/chi first. The project is split into its words
(`go-sdk` -> go, sdk; `modelcontextprotocol` stays one word) and matched whole, never inside
another word ("in" is not a match for "gin").

    exact    the query names the whole project: a query word equals it ("fastapi"), or adjacent
             query words spell it in order ("fast api", "go sdk"); a generic word (below)
             names a project alone only when it is the whole query                     -> 3.0
    words    each project word the query contains, if it is distinctive: 3+ letters and not a
             word that names a language, protocol or kind of package ("go", "js", "api", "sdk",
             "http"), which a query says to describe what it wants, not to name a library  -> 1.0
A generic word alone never matches: `libs "http router for go"` must not put `/x/go-sdk` first.
"""

from __future__ import annotations

import re

_SPLIT = re.compile(r"[^0-9a-z]+")
EXACT = 3.0
# Words that describe what a library is rather than which library it is.
GENERIC = frozenset("""
api apis app cli client core go golang http https js json lib library node py python rs rust sdk
server sql tool tools ts web
""".split())
MAX_SPELLED_WORDS = 4  # "model context protocol" spells a project in up to this many words


def query_words(query: str) -> list[str]:
    """The query's lowercase alphanumeric words, in order."""
    return [w for w in _SPLIT.split(query.lower()) if w]


def name_score(lib_id: str, words: list[str]) -> float:
    """The name match of `lib_id` for the query `words` (0 when the query does not name it)."""
    project = lib_id.lower().rstrip("/").rsplit("/", 1)[-1]
    parts = [p for p in _SPLIT.split(project) if p]
    if not words or not parts:
        return 0.0
    joined = "".join(parts)
    spelled = any("".join(words[i:j]) == joined and (j - i > 1 or joined not in GENERIC or len(words) == 1)
                  for i in range(len(words)) for j in range(i + 1, min(len(words), i + MAX_SPELLED_WORDS) + 1))
    exact = EXACT if spelled else 0.0
    distinctive = {p for p in parts if len(p) >= 3 and p not in GENERIC}
    return exact + sum(1.0 for p in distinctive if p in words)
