"""Sections of a markdown document: the text under each heading, with its heading path.

    section_texts(markdown)        [(heading path, section text)] in document order

A *section* is the text under a heading (markdown-it-py decides what is a heading: a `#` in a
fence of any length or `~~~` is code), up to the next heading, without its leading and
trailing blank lines; the text before the first heading has the empty path. A heading's path
is its ancestors' titles and its own (H1 > H2 > H3 ...). Each section also records where its
top-level blocks and lines start, and which lines are code, for the chunker's cuts.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from markdown_it import MarkdownIt

from deadzone_build.pipeline.markdown import code_line_ranges, line_starts, markdown_tokens

# Cut strengths, strongest first: the chunker prefers cutting where the number is low.
BLOCK, BLANK_LINE, LINE, CODE_LINE, SENTENCE, WORD, CHARACTER = range(7)


@dataclass(frozen=True)
class Section:
    path: tuple[str, ...]
    text: str
    block_starts: tuple[int, ...]  # offsets in text where a top-level block starts (0 excluded)
    line_cuts: tuple[int, ...]  # offsets in text where a line starts (0 excluded), sorted
    line_kinds: tuple[int, ...]  # BLANK_LINE / LINE / CODE_LINE for each of line_cuts


def section_texts(markdown: str) -> list[tuple[tuple[str, ...], str]]:
    """(heading path, text) of every section of `markdown`, in order; a text may be ""."""
    return [(s.path, s.text) for s in sections(markdown)]


def sections(markdown: str) -> list[Section]:
    env: dict = {}
    tokens = markdown_tokens(markdown, env)
    lines = markdown.split("\n")
    starts = line_starts(markdown)
    in_code = _code_lines(markdown, tokens, len(lines))
    block_lines = sorted({t.map[0] for t in tokens if t.level == 0 and t.map and t.nesting >= 0})
    found: list[Section] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    for start, end, level, title in _headings(tokens, env):
        found.append(_section(stack, lines, starts, in_code, block_lines, body_start, start))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        body_start = end
    found.append(_section(stack, lines, starts, in_code, block_lines, body_start, len(lines)))
    return found


def _section(stack: list[tuple[int, str]], lines: list[str], starts: list[int], in_code: list[bool],
             block_lines: list[int], first: int, last: int) -> Section:
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    path = tuple(title for _, title in stack if title)
    if first >= last:
        return Section(path, "", (), (), ())
    base = starts[first]
    text = "\n".join(lines[first:last])
    blocks = tuple(starts[n] - base for n in block_lines[bisect.bisect_right(block_lines, first):
                                                          bisect.bisect_left(block_lines, last)])
    cuts = tuple(starts[n] - base for n in range(first + 1, last))
    kinds = tuple(CODE_LINE if in_code[n] else BLANK_LINE if not lines[n - 1].strip() else LINE
                  for n in range(first + 1, last))
    return Section(path, text, blocks, cuts, kinds)


def _code_lines(markdown: str, tokens: list, count: int) -> list[bool]:
    """Per line: True when a cut just before it would fall inside a code block."""
    flags = [False] * count
    for start, end in code_line_ranges(markdown, tokens):
        for n in range(start + 1, min(end, count)):
            flags[n] = True
    return flags


def _headings(tokens: list, env: dict) -> list[tuple[int, int, int, str]]:
    """(first line, end line, level, title) of every top-level heading."""
    found = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.level == 0 and token.map:
            title = heading_title(tokens[i + 1].content, env)
            found.append((token.map[0], token.map[1], int(token.tag[1:]), title))
    return found


_INLINE = MarkdownIt("commonmark", {"html": True})


def heading_title(source: str, env: dict | None = None) -> str:
    """A heading's text as a reader sees it: markup dropped, `code` kept in backticks, links
    (reference links resolved through `env`) reduced to their text."""
    if not any(c in source for c in "*_`[]<>!&\\"):
        return " ".join(source.split())
    parts: list[str] = []
    inline = _INLINE.parseInline(source, dict(env or {}))[0]
    for child in inline.children or []:
        if child.type in ("text", "image"):
            parts.append(child.content)
        elif child.type == "code_inline":
            parts.append(f"{child.markup}{child.content}{child.markup}")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())
