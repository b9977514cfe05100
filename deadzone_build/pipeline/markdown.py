"""The markdown parser both cleaning (clean.py) and chunking (chunk.py) read, so they agree on
what is a fence and what a heading; plus the line arithmetic they share.

    normalize_newlines(text)         CRLF/CR → LF, BOM dropped: the one place newlines are normalised
    markdown_tokens(text, env)       markdown-it-py block tokens (CommonMark + tables, HTML blocks on)
    code_line_ranges(text, tokens)   [start, end) line ranges that are code and must not change
    line_starts(text) / line_of()    offsets of line starts; the line holding an offset
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable

from markdown_it import MarkdownIt

__all__ = ["normalize_newlines", "markdown_tokens", "code_line_ranges", "line_starts", "line_of"]


def normalize_newlines(text: str) -> str:
    """`text` with every CRLF or lone CR as LF (a CR is never content, not even in code) and
    without a leading byte-order mark. markdown-it counts lines after the same normalisation,
    so line maps and `text.split("\\n")` then agree."""
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


# One parser for cleaning and chunking, so both agree on what is a fence and what a heading.
# Block structure only: inline parsing is half of markdown-it's time and neither needs it
# (the chunker parses heading titles on their own).
_MD = MarkdownIt("commonmark", {"html": True}).enable("table").disable("inline")
_MD_NO_HTML = MarkdownIt("commonmark", {"html": False}).enable("table").disable("inline")


def markdown_tokens(text: str, env: dict | None = None) -> list:
    """Block tokens of `text` (markdown-it-py, CommonMark + tables, HTML blocks on); inline
    tokens keep their source in `.content` and have no children. `env` collects the link
    reference definitions (`env["references"]`)."""
    return _MD.parse(text, env)


def code_line_ranges(text: str, tokens: list | None = None) -> list[tuple[int, int]]:
    """Sorted, disjoint [start, end) line ranges of `text` that are code and must not change."""
    ranges: list[tuple[int, int]] = []
    for token in tokens if tokens is not None else markdown_tokens(text):
        if token.map is None:
            continue
        start, end = token.map
        if token.type in ("fence", "code_block"):
            ranges.append((start, end))
        elif token.type == "html_block":
            head = token.content.lstrip()[:5].lower()
            if head.startswith("<pre"):
                ranges.append((start, end))
            elif not head.startswith("<!--"):
                ranges.extend(_fences_inside_html(token.content, start))
    return _merge_ranges(ranges)


def _fences_inside_html(content: str, offset: int) -> Iterable[tuple[int, int]]:
    for token in _MD_NO_HTML.parse(content):
        if token.type in ("fence", "code_block") and token.map is not None:
            yield token.map[0] + offset, token.map[1] + offset


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def line_starts(text: str) -> list[int]:
    """The offset of the first character of each line of `text` (split on `\\n`)."""
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def line_of(starts: list[int], pos: int) -> int:
    """The index of the line holding offset `pos`, given `line_starts` of the text."""
    return bisect.bisect_right(starts, pos) - 1
