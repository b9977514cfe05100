"""How search turns its two candidate lists into one ranking (pure functions, no I/O).

The rules below were chosen by `bench/relevance.py` (README "Search relevance"): on its
questions, tuned on one half and checked on the other, each rule raised the fused hit@5 and
MRR@10 above the better half's, with and without the library filter.

    keyword terms    the query's words minus English function words ("how", "to", "the"...),
                     each an FTS5 phrase; the bm25 side weighs a heading-path match 3x a text
                     match (HEADING_WEIGHT): a page section titled with the words is usually
                     the answer
    versions         identical chunk texts of one library (same text and heading path, any
                     version) are one candidate: its first place in each list counts, later
                     copies take no rank
    documents        documents are ranked by RRF over each list's rank of the document's best
                     chunk; the hits are the best chunk of each document in that order, then
                     the further chunks (so one long page cannot fill the first places)

RRF (score = sum of 1 / (RRF_K + rank)) needs no calibration between bm25 and cosine, which the
bench showed matters: min-max score fusion won on the tuning half but lost to the vector half on
the held-out half with the library filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Hashable, Sequence

RRF_K = 60
HEADING_WEIGHT = 3.0  # bm25() weight of the heading_path column (text is 1.0)
MAX_QUERY_TERMS = 32
_WORD = re.compile(r"\w", re.UNICODE)
_EDGE_PUNCTUATION = "?!.,;:'\"()[]{}"

# Words that carry no topic in a question an agent asks. Kept short on purpose: only words whose
# bm25 weight is noise in documentation (never an API name: "get", "set", "new", "all" stay).
FUNCTION_WORDS = frozenset("""
a an and are as at be been by can could do does doing for from how i if in into is it its me my
of on or our should so than that the their them then there these this those to was we were what
when where which while who whom why will with would you your
""".split())


def fts_phrases(text: str, *, drop_function_words: bool = False) -> list[str]:
    """Every whitespace-separated word of `text` as a quoted FTS5 phrase (duplicates dropped).

    Quoting makes operators, parentheses, `*`, `:` and stray quotes plain text; `foo.bar(x)`
    becomes the phrase "foo bar x", which ranks an exact API mention first. With
    `drop_function_words`, words like "how" and "the" are left out unless nothing else is left.
    """
    words = [w for w in text.split() if _WORD.search(w)]
    if drop_function_words:
        topical = [w for w in words if w.strip(_EDGE_PUNCTUATION).lower() not in FUNCTION_WORDS]
        words = topical or words
    unique = dict.fromkeys(words)
    return ['"' + w.replace('"', '""') + '"' for w in list(unique)[:MAX_QUERY_TERMS]]


def fts_query(text: str) -> str:
    """A safe FTS5 MATCH expression: the phrases of `text` OR-ed; "" when nothing is left."""
    return " OR ".join(fts_phrases(text))


@dataclass(frozen=True)
class Candidate:
    """One chunk found by either side, with what fusion needs to know about it."""

    id: int  # chunks.id
    document: Hashable  # what "one document" means: the chunk's url
    same_text: Hashable  # equal for identical chunks of one library in several versions


def collapse(ranking: Sequence[int], candidates: dict[int, Candidate], representative: dict[Hashable, int]
             ) -> list[int]:
    """`ranking` with every chunk replaced by its group's representative, each group once."""
    seen: set[int] = set()
    out = []
    for chunk_id in ranking:
        rep = representative[candidates[chunk_id].same_text]
        if rep not in seen:
            seen.add(rep)
            out.append(rep)
    return out


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = RRF_K) -> dict[Hashable, float]:
    """Reciprocal Rank Fusion: item -> sum over the rankings of 1 / (k + rank), rank from 1."""
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def document_fusion(rankings: Sequence[Sequence[int]], candidates: dict[int, Candidate]
                    ) -> list[tuple[int, float]]:
    """(chunk id, its document's fused score), best document's best chunk first.

    A document's rank in one list is the rank of its best chunk there. The output lists the best
    chunk of every document (documents by fused score, ties by the first ranking's order), then
    the remaining chunks in the same document order, each document's by chunk-level RRF.
    """
    by_document = []
    for ranking in rankings:
        order = dict.fromkeys(candidates[c].document for c in ranking)
        by_document.append(list(order))
    document_score = rrf(by_document)
    chunk_score = rrf(rankings)
    # ties (a document first on one side, second on the other, and the reverse) go to the first
    # ranking's order: search passes the vector side first, the stronger on paraphrases
    first_side = {d: n for n, d in enumerate(by_document[0])} if by_document else {}
    ordered = sorted(chunk_score, key=lambda c: (-document_score[candidates[c].document],
                                                 first_side.get(candidates[c].document, len(first_side)),
                                                 -chunk_score[c], c))
    first, rest, listed = [], [], set()
    for chunk_id in ordered:
        document = candidates[chunk_id].document
        (rest if document in listed else first).append(chunk_id)
        listed.add(document)
    return [(c, document_score[candidates[c].document]) for c in first + rest]
