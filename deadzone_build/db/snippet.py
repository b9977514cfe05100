"""Display text for a search hit: whole lines, and code fences that open and close inside it.

A chunk is an exact slice of its section (pipeline/chunk.py), so it can begin mid-line (a
sentence or word cut) or inside a fenced code block whose opening line sits in an earlier chunk.
`snippet` reads the chunks before and after it in the same section to extend the text to line
boundaries and to re-open (and close) the fence, so a client never shows a dangling `})`.

Fences follow CommonMark: a line of 3+ backticks or tildes, indented at most 3 spaces, opens a
block; a line of the same character, at least as long, with nothing else, closes it.
"""

from __future__ import annotations

import re
from typing import Sequence

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def open_fence_after(text: str, fence: str | None = None) -> str | None:
    """The opening fence line still open at the end of `text` (None when outside code).

    `fence` is the line open at the start of `text`, if any.
    """
    for line in text.splitlines():
        match = _FENCE.match(line)
        if not match:
            continue
        marker, rest = match.group(1), match.group(2)
        if fence is None:
            if marker[0] == "`" and "`" in rest:
                continue  # "```foo`" is inline code, not a fence
            fence = line.strip()
        else:
            opened = _FENCE.match(fence).group(1)
            if marker[0] == opened[0] and len(marker) >= len(opened) and not rest.strip():
                fence = None
    return fence


def snippet(text: str, before: Sequence[str] = (), after: Sequence[str] = ()) -> str:
    """`text` widened to whole lines, with its code fences balanced.

    `before` and `after` are the texts of the chunks that precede and follow it in the same
    section, in document order (empty when it is the section's first or last chunk).
    """
    preceding = "".join(before)
    head = ""
    if preceding and not preceding.endswith("\n"):
        head = preceding.rsplit("\n", 1)[-1]  # the start of the line the chunk begins in
    following = "".join(after)
    tail = ""
    if following and not text.endswith("\n"):
        tail = following.split("\n", 1)[0]  # the rest of the line the chunk ends in
    body = (head + text + tail).rstrip("\n")
    fence = open_fence_after(preceding[: len(preceding) - len(head)]) if preceding else None
    if fence is not None:
        body = fence + "\n" + body
    if open_fence_after(body) is not None:
        closing = _FENCE.match(open_fence_after(body)).group(1)
        body = body + "\n" + closing
    return body


def preview(snippet_text: str, max_lines: int) -> str:
    """The first `max_lines` lines of a snippet, closing a fence the cut leaves open."""
    lines = snippet_text.splitlines()
    if len(lines) <= max_lines:
        return snippet_text
    shown = "\n".join(lines[:max_lines])
    fence = open_fence_after(shown)
    if fence is not None:
        shown += "\n" + _FENCE.match(fence).group(1)
    return shown
