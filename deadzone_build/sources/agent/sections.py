"""Splitting a page's markdown into pieces the endpoint can take, without losing a byte.

    split_pieces(markdown, max_bytes) -> [piece, ...]      "".join(pieces) == markdown, always

Pieces start at headings: the page is cut into sections at every top-level heading, consecutive
sections are packed into one piece while it stays within `max_bytes` (UTF-8), and a section larger
than that is cut at its top-level block boundaries (paragraphs, lists, code blocks), never inside a
block. A single block larger than `max_bytes` is a piece on its own, over the cap: the caller sends
it anyway or keeps it deterministic (its choice; see source.py), but it is never cut or dropped.
Block boundaries come from markdown-it-py, the chunker's parser.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

_parser = MarkdownIt("commonmark")


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) for line in lines)


def split_pieces(markdown: str, max_bytes: int) -> list[str]:
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    lines = markdown.splitlines(keepends=True)
    if not lines:
        return []
    tokens = _parser.parse(markdown)
    block_starts = sorted({t.map[0] for t in tokens if t.level == 0 and t.map} | {0})
    heading_starts = sorted({t.map[0] for t in tokens if t.type == "heading_open" and t.level == 0 and t.map} | {0})
    units: list[list[str]] = []
    bounds = heading_starts + [len(lines)]
    for start, end in zip(bounds, bounds[1:]):
        section = lines[start:end]
        if _size(section) <= max_bytes:
            units.append(section)
            continue
        cuts = [b for b in block_starts if start < b < end]
        current: list[str] = []
        for a, b in zip([start, *cuts], [*cuts, end]):
            block = lines[a:b]
            if current and _size(current) + _size(block) > max_bytes:
                units.append(current)
                current = []
            current = current + block
        if current:
            units.append(current)
    pieces: list[str] = []
    current = []
    for unit in units:
        if current and _size(current) + _size(unit) > max_bytes:
            pieces.append("".join(current))
            current = []
        current = current + unit
    if current:
        pieces.append("".join(current))
    return pieces
