"""Checking an endpoint's answer against the section it was given: no invented code, no lost code.

The rule (stated once, applied to every fenced block):

    normalise(text) = HTML entities decoded (html.unescape), then each line with every run of
                      spaces/tabs collapsed to one space and both ends stripped, blank lines at the
                      start and end of the block removed

    1. every fenced block of the answer, normalised, must be a run of consecutive lines of one
       code block of the source section, normalised (it may quote part of the code, never write code);
    2. every code block of the source section, normalised, must equal some fenced block of the
       answer, normalised (the model may not drop or rewrite code).

A block passing rule 2 is then replaced by the source's exact bytes, so code in the artifact is
always the page's own, whatever whitespace the model changed. An answer that fails either rule is
not used: the section falls back to the deterministic markdown (see source.py). Blocks are found
with markdown-it-py (the chunker's parser), so fences in lists or with longer backtick runs count.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

_SPACES = re.compile(r"[ \t]+")
_THINKING = re.compile(r"\A\s*<think>.*?</think>\s*", re.S)
_WRAPPED = re.compile(r"\s*(?P<fence>`{3,}|~{3,})[ \t]*(?:markdown|md)[ \t]*\n(?P<body>.*)\n(?P=fence)[ \t]*\s*", re.S)
_parser = MarkdownIt("commonmark")


@dataclass(frozen=True)
class CodeBlock:
    info: str
    content: str  # as written inside the fence, without its final newline
    start: int  # line range of the whole fenced block in the markdown (0-based, end exclusive)
    end: int


def tidy_answer(answer: str) -> str:
    """The markdown inside what models add despite the prompt: a leading `<think>…</think>` block,
    and one ```` ```markdown ```` fence around the whole answer."""
    text = _THINKING.sub("", answer)
    wrapped = _WRAPPED.fullmatch(text)
    return wrapped.group("body") + "\n" if wrapped else text


def code_blocks(markdown: str) -> list[CodeBlock]:
    """Fenced code blocks of `markdown`, in order (indented code is not a fence and is ignored)."""
    blocks = []
    for token in _parser.parse(markdown):
        if token.type == "fence" and token.map:
            blocks.append(CodeBlock(token.info.strip(), token.content.removesuffix("\n"), *token.map))
    return blocks


def normalise(code: str) -> tuple[str, ...]:
    lines = [_SPACES.sub(" ", line).strip() for line in html.unescape(code).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


def _is_run_of(needle: tuple[str, ...], haystack: tuple[str, ...]) -> bool:
    if not needle:
        return True
    return any(haystack[i:i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def check_answer(answer: str, source_code: list[str]) -> tuple[str | None, str]:
    """(problem or None, answer with verified blocks restored to the source's exact bytes)."""
    sources = [normalise(code) for code in source_code]
    blocks = code_blocks(answer)
    normalised = [normalise(block.content) for block in blocks]
    for block, norm in zip(blocks, normalised):
        if not any(_is_run_of(norm, source) for source in sources):
            first = next((line for line in norm if line), "")
            return (f"the answer has a code block not in the page (line {block.start + 1}: {first[:60]!r})", answer)
    for code, norm in zip(source_code, sources):
        if norm and norm not in normalised:
            first = next((line for line in norm if line), "")
            return (f"the answer lost or changed a code block of the page ({first[:60]!r})", answer)
    exact = {norm: code for code, norm in zip(source_code, sources)}
    lines = answer.split("\n")
    for block, norm in sorted(zip(blocks, normalised), key=lambda pair: -pair[0].start):
        if norm in exact and block.content != exact[norm]:
            lines[block.start:block.end] = _refence(lines[block.start], exact[norm], lines[block.start:block.end])
    return None, "\n".join(lines)


def _refence(opening: str, code: str, original: list[str]) -> list[str]:
    """The block with the source's code, fenced at the answer's indentation with a safe fence."""
    indent = opening[: len(opening) - len(opening.lstrip())]
    info = opening.lstrip().lstrip("`~").strip()
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = [indent + line if line else line for line in code.split("\n")] if indent else code.split("\n")
    return [f"{indent}{ticks}{info}", *body, f"{indent}{ticks}"]
