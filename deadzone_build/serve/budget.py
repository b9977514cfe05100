"""The token budget of search_docs: word pieces of the model's own tokenizer, cut at a boundary.

deadzone estimates 4 characters per token; here the budget is counted exactly with the
tokenizer of all-MiniLM-L6-v2 (a WordPiece vocabulary, so roughly one piece per short English
word, more for identifiers and code). Only snippet `content` counts, as in deadzone: titles,
URLs and the other fields are not part of the budget. An LLM's own tokenizer gives counts of
the same order (within about ±30% on documentation text), which is all a budget needs.

A snippet that does not fit is cut to the remaining budget at the last line end, else the last
sentence end, else the last space before the limit, so a cut never falls inside a word (hence
never inside a word piece either). A cut that leaves a code fence open closes it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

from deadzone_build.db.snippet import open_fence_after
from deadzone_build.embed import model_files

_CLOSING = "\n```"  # room kept for closing an open fence (a ~~~ fence closes with its own marker)
_MARKER = re.compile(r"\s*([`~]{3,})")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


@dataclass(frozen=True)
class Cut:
    text: str
    tokens: int
    truncated: bool


_counted: OrderedDict[str, int] = OrderedDict()  # the same chunks come back often: tokenizing costs ~1 ms each
_counted_lock = Lock()
COUNT_CACHE = 4096


def count_pieces(texts: list[str]) -> list[int]:
    """Word pieces per text, without [CLS]/[SEP] (they are not returned text)."""
    with _counted_lock:
        known = {t: _counted[t] for t in texts if t in _counted}
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        encodings = model_files.count_tokens.tokenizer.encode_batch(missing, add_special_tokens=False)
        fresh = {text: len(encoding.ids) for text, encoding in zip(missing, encodings)}
        known.update(fresh)
        with _counted_lock:
            _counted.update(fresh)
            while len(_counted) > COUNT_CACHE:
                _counted.popitem(last=False)
    return [known[t] for t in texts]


def cut_to_budget(text: str, budget: int) -> Cut:
    """`text` whole if it fits in `budget` pieces, else its longest prefix ending at a boundary that does.

    Returns an empty cut when not even one line, sentence or word fits.
    """
    tokenizer = model_files.count_tokens.tokenizer
    encoding = tokenizer.encode(text, add_special_tokens=False)
    if len(encoding.ids) <= budget:
        return Cut(text, len(encoding.ids), False)
    for allowance in (budget, budget - len(tokenizer.encode(_CLOSING, add_special_tokens=False).ids)):
        if allowance < 1:
            break
        limit = encoding.offsets[allowance - 1][1]  # end of the last piece that fits
        prefix = _boundary_prefix(text, limit)
        if not prefix:
            break
        fence = open_fence_after(prefix)
        if fence is not None:
            if allowance != budget:  # second pass: room was kept for the closing fence
                prefix += "\n" + _MARKER.match(fence).group(1)  # type: ignore[union-attr]
            else:
                continue
        tokens = len(tokenizer.encode(prefix, add_special_tokens=False).ids)
        if tokens <= budget:
            return Cut(prefix, tokens, True)
    return Cut("", 0, True)


def _boundary_prefix(text: str, limit: int) -> str:
    """The longest prefix of text[:limit] ending a line, else a sentence, else a word (trailing space dropped).

    A line end is preferred unless it keeps less than half of what fits, then a sentence end
    under the same rule; failing both, the longest of all three kinds.
    """
    line_ends = [i for i in range(limit + 1) if i == len(text) or text[i] == "\n"] if limit else []
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if m.end() <= limit]
    word_ends = [i for i in range(1, limit + 1) if i == len(text) or text[i].isspace()]
    kinds = [[i for i in ends if text[:i].strip()] for ends in (line_ends, sentence_ends, word_ends)]
    for ends in kinds[:2]:
        if ends and ends[-1] * 2 >= limit:
            return text[:ends[-1]].rstrip()
    best = max((ends[-1] for ends in kinds if ends), default=0)
    return text[:best].rstrip()

