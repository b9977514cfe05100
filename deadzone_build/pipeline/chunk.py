"""Heading-aware chunking that fits the embedder's window, counted with the model's tokenizer.

    chunk_markdown(markdown, url)  [Chunk], ordinals 0..n-1, each ≤ max_tokens word pieces

Chunks never cross sections (pipeline/sections.py: the text under a heading, with its heading path).

**Recoverability.** A section's chunks are consecutive, exact slices of its text that cover
it: `"".join(c.text for c in chunks_of_section) == section_text`. The whitespace between two
pieces (a blank line, a newline, a space) stays at the end of the first piece.

**Fit.** `chunk.tokens == count_tokens([embedding_text(chunk)])[0] <= max_tokens`, where
`embedding_text` prepends the heading path. A section that fits is one chunk. A longer one is
cut at top-level block boundaries (paragraph, list, fence, table), then at lines (a fence's
lines stay together unless the fence alone does not fit), then sentences, then words, then —
for one over-long word — characters. Only pieces that still do not fit are cut further; the
pieces are then grouped into as few chunks as possible, preferring cuts at stronger
boundaries, avoiding fragments under `min_tokens` when a merge fits, then balancing sizes.

**Speed.** With the model's own counter (the default), each document is tokenized once: a
piece's count is read off the token offsets, and a chunk's count is its path's plus its
pieces' (BERT's word pieces add up across whitespace, where every cut but a character cut
falls). With any other `count_tokens`, pieces are counted in one batch per level and every
planned chunk once more; a chunk that does not fit after all is cut again. Both give the same
chunks for the model's tokenizer (a test checks it on the whole docs mirror).
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from deadzone_build.embed import model_files
from deadzone_build.embed.pin import MAX_SEQ_LENGTH
from deadzone_build.pipeline.sections import BLOCK, CHARACTER, CODE_LINE, SENTENCE, WORD
from deadzone_build.pipeline.sections import Section as _Section
from deadzone_build.pipeline.sections import sections as _sections

CountTokens = Callable[[list[str]], list[int]]
PATH_SEPARATOR = " > "

# Levels at which a piece that does not fit is cut, in order; a piece past the last is kept whole.
BLOCKS, LINES, CODE_LINES, SENTENCES, WORDS, CHARACTERS, UNCUT = range(7)
# Whitespace as BERT's normaliser sees it (controls such as \x1c or \x85 are deleted, not spaces):
# sentence and word cuts fall only where the tokenizer also splits, so counts add up.
_WS = "[ \t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*" + _WS + "+(?=[^" + _WS[1:] + ")")
_WORD_START = re.compile("(?<=" + _WS + ")[^" + _WS[1:])


@dataclass(frozen=True)
class Chunk:
    url: str
    heading_path: tuple[str, ...]
    ordinal: int
    text: str
    tokens: int

    def record(self) -> dict[str, Any]:
        """The chunk as one row of an artifact's chunks.jsonl (pipeline/artifact.py CHUNK_FIELDS)."""
        return {"url": self.url, "heading_path": list(self.heading_path), "ordinal": self.ordinal,
                "text": self.text, "tokens": self.tokens}


def embedding_text(chunk: Chunk) -> str:
    """What the embedder reads: `A > B > C`, a blank line, then the text (just the text without a path)."""
    return _embedding_text(chunk.heading_path, chunk.text)


def _embedding_text(path: tuple[str, ...], text: str) -> str:
    return f"{PATH_SEPARATOR.join(path)}\n\n{text}" if path else text


# --------------------------------------------------------------------------- chunking


def chunk_markdown(markdown: str, url: str, *, max_tokens: int = MAX_SEQ_LENGTH,
                   count_tokens: CountTokens = model_files.count_tokens,
                   min_tokens: int = 48) -> list[Chunk]:
    """The chunks of one document, in order, ordinals 0..n-1 (the caller renumbers per slot).

    A chunk whose own text counts fewer than `min_tokens` is merged with a neighbour of its
    section whenever the merge fits.
    """
    sections = [s for s in _sections(markdown) if s.text.strip()]
    if not sections:
        return []
    planner = _Planner(sections, max_tokens, min_tokens, count_tokens)
    return [Chunk(url=url, heading_path=path, ordinal=n, text=text, tokens=tokens)
            for n, (path, text, tokens) in enumerate(planner.chunks())]


@dataclass
class _Atom:
    """A piece of a section's text that fits on its own; chunks are runs of atoms."""

    start: int
    end: int
    pieces: int  # word pieces of text[start:end] alone, without [CLS]/[SEP]
    level: int  # the level of the cut that made it (CHARACTERS: counted for real, not additive)


class _Counter:
    """Counts through any `count_tokens`: every piece and every planned chunk is counted."""

    def __init__(self, count_tokens: CountTokens, sections: list[_Section], path_costs: list[int | None]) -> None:
        self.count = count_tokens
        self.sections = sections
        self.empty = count_tokens([""])[0]  # what the counter adds to any text: [CLS] and [SEP]
        # per section: the tokens of its embedding text beyond its own text (path, or just [CLS]/[SEP])
        self.overhead = [self.empty if cost is None else cost for cost in path_costs]

    def whole(self) -> list[int]:
        """Exact tokens of each section's embedding text."""
        return self.count([_embedding_text(s.path, s.text) for s in self.sections])

    def pieces(self, spans: list[tuple[int, int, int, int]]) -> list[int]:
        """Word pieces of each (section, start, end, level) span's text alone."""
        texts = [self.sections[i].text[s:e] for i, s, e, _ in spans]
        return [c - self.empty for c in self.count(texts)] if texts else []

    def known_tokens(self, overhead: int, group: list[_Atom]) -> int | None:
        """Exact tokens of a planned chunk when they follow from its atoms, else None."""
        return None


class _OffsetCounter(_Counter):
    """The model's own tokenizer, once per section: a piece's count is read off the offsets.

    BERT's normaliser works per character and its pre-tokenizer splits at whitespace and
    punctuation, so the word pieces of a slice cut at whitespace are exactly the section's
    tokens that start in it, and a chunk's count is its heading path's count plus its pieces.
    Only cuts inside a word (CHARACTERS) break that: those pieces and chunks are counted.
    """

    def __init__(self, count_tokens: model_files.TokenCounter, sections: list[_Section],
                 path_costs: list[int | None]) -> None:
        super().__init__(count_tokens, sections, path_costs)
        self.tokenizer = count_tokens.tokenizer
        self.encodings: list = []
        self.starts: dict[int, list[int]] = {}

    def whole(self) -> list[int]:
        self.encodings = self.tokenizer.encode_batch([s.text for s in self.sections], add_special_tokens=False)
        return [o + len(e) for o, e in zip(self.overhead, self.encodings)]

    def pieces(self, spans: list[tuple[int, int, int, int]]) -> list[int]:
        inside_words = [n for n, span in enumerate(spans) if span[3] >= CHARACTERS]
        counted = dict(zip(inside_words, super().pieces([spans[n] for n in inside_words])))
        return [counted[n] if n in counted else self._offset_count(i, s, e)
                for n, (i, s, e, _) in enumerate(spans)]

    def _offset_count(self, i: int, start: int, end: int) -> int:
        if i not in self.starts:
            self.starts[i] = [first for first, _ in self.encodings[i].offsets]
        starts = self.starts[i]
        return bisect.bisect_left(starts, end) - bisect.bisect_left(starts, start)

    def known_tokens(self, overhead: int, group: list[_Atom]) -> int | None:
        if any(a.level >= CHARACTERS for a in group):
            return None
        return overhead + sum(a.pieces for a in group)


class _Planner:
    """Plans and counts the chunks of one document's sections."""

    def __init__(self, sections: list[_Section], max_tokens: int, min_tokens: int,
                 count_tokens: CountTokens) -> None:
        self.count = count_tokens
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        unique = sorted({s.path for s in sections if s.path})
        path_cost = dict(zip(unique, count_tokens([PATH_SEPARATOR.join(p) for p in unique])))
        fitted = {p: self._fit_path(p, path_cost[p]) for p in unique}
        self.sections = [
            _Section(fitted[s.path][0], s.text, s.block_starts, s.line_cuts, s.line_kinds)
            if s.path else s for s in sections
        ]
        fast = isinstance(count_tokens, model_files.TokenCounter)  # the model's own tokenizer: offsets add up
        path_costs = [fitted[s.path][1] if s.path else None for s in sections]
        self.counter = (_OffsetCounter if fast else _Counter)(count_tokens, self.sections, path_costs)
        self.overhead = self.counter.overhead
        self.budget = [max_tokens - o for o in self.overhead]  # word pieces left for the text
        self.cut_strength: list[dict[int, int]] = [{} for _ in sections]

    def _fit_path(self, path: tuple[str, ...], cost: int) -> tuple[tuple[str, ...], int]:
        """A heading path that leaves at least half the window to the text.

        The longest title is shortened first (at a word, marked with "…"), so a page's context
        survives one absurd heading; only a path of many short titles loses its outer ones.
        """
        limit = self.max_tokens // 2
        while cost > limit:
            shorter = _shorten_path(path)
            if shorter == path:
                break
            path = shorter
            cost = self.count([PATH_SEPARATOR.join(path)])[0]
        return path, cost

    def chunks(self) -> list[tuple[tuple[str, ...], str, int]]:
        """(path, text, tokens) of every chunk, in document order."""
        whole = self.counter.whole()
        planned: list[list[tuple[int, int, int]]] = [[] for _ in self.sections]
        oversized = []
        for i, (section, tokens) in enumerate(zip(self.sections, whole)):
            if tokens <= self.max_tokens:
                planned[i] = [(0, len(section.text), tokens)]
            else:
                oversized.append((i, tokens - self.overhead[i]))
        atoms = self._atoms(oversized)
        plans = {i: self._plan(i, atoms[i]) for i, _ in oversized}
        for i, spans in self._count_chunks(plans).items():
            planned[i] = spans
        return [(self.sections[i].path, self.sections[i].text[s:e], tokens)
                for i, spans in enumerate(planned) for s, e, tokens in spans]

    # ---- cutting the pieces that do not fit until every piece (atom) does

    def _atoms(self, oversized: list[tuple[int, int]]) -> dict[int, list[_Atom]]:
        atoms: dict[int, list[_Atom]] = {i: [] for i, _ in oversized}
        pending: list[tuple[int, int, int, int]] = []
        for i, pieces in oversized:
            pending.extend(self._cut(i, 0, len(self.sections[i].text), BLOCKS, pieces))
        while pending:  # one counting batch per level
            deeper = []
            for (i, s, e, level), pieces in zip(pending, self.counter.pieces(pending)):
                if pieces <= self.budget[i] or level >= UNCUT:
                    atoms[i].append(_Atom(s, e, pieces, level))
                else:
                    deeper.extend(self._cut(i, s, e, level, pieces))
            pending = deeper
        for found in atoms.values():
            found.sort(key=lambda a: a.start)
        return atoms

    def _cut(self, i: int, start: int, end: int, level: int, pieces: int) -> list[tuple[int, int, int, int]]:
        """text[start:end] cut at the first level, from `level` on, that has a cut inside it."""
        for depth in range(level, UNCUT):
            cuts = _keep_nonblank_pieces(self.sections[i].text, start, end,
                                         self._cuts(i, start, end, depth, pieces))
            if cuts:
                self.cut_strength[i].update(cuts)
                bounds = [start] + [c for c, _ in cuts] + [end]
                return [(i, a, b, depth) for a, b in zip(bounds, bounds[1:])]
        return [(i, start, end, UNCUT)]

    def _cuts(self, i: int, start: int, end: int, level: int, pieces: int) -> list[tuple[int, int]]:
        """(offset, strength) of every cut of `level` strictly inside text[start:end]."""
        section = self.sections[i]
        if level == BLOCKS:
            return [(c, BLOCK) for c in _between(section.block_starts, start, end)]
        if level in (LINES, CODE_LINES):
            lo = bisect.bisect_right(section.line_cuts, start)
            hi = bisect.bisect_left(section.line_cuts, end)
            pairs = zip(section.line_cuts[lo:hi], section.line_kinds[lo:hi])
            return [(c, k) for c, k in pairs if level == CODE_LINES or k != CODE_LINE]
        if level == SENTENCES:
            return [(m.end(), SENTENCE) for m in _SENTENCE_END.finditer(section.text, start, end)
                    if m.end() < end]
        if level == WORDS:
            # Every word would make thousands of atoms of a long line (and a slow plan): cut
            # every `step` words, about an eighth of the budget apart; a group that still does
            # not fit is cut again at this level, with a smaller step.
            starts = [m.start() for m in _WORD_START.finditer(section.text, start, end) if m.start() > start]
            step = max(1, len(starts) * self.budget[i] // (8 * max(pieces, 1)))
            return [(c, WORD) for c in starts[step - 1::step]]
        parts = max(2, math.ceil(pieces / max(1, self.budget[i] * 3 // 4)))
        offsets = sorted({start + (end - start) * n // parts for n in range(1, parts)})
        return [(c, CHARACTER) for c in offsets if start < c < end]

    # ---- grouping atoms into chunks

    def _plan(self, i: int, atoms: list[_Atom]) -> list[list[_Atom]]:
        """Runs of atoms that fit: fewest chunks, then fewest under min_tokens, then cuts at
        the strongest boundaries, then the most even sizes (a shortest-path over cut points)."""
        budget, strength = self.budget[i], self.cut_strength[i]
        small = self.min_tokens - self.counter.empty
        best: list[tuple[int, int, int, int] | None] = [None] * (len(atoms) + 1)
        best[0] = (0, 0, 0, 0)
        back = [0] * (len(atoms) + 1)
        for j in range(1, len(atoms) + 1):
            total = 0
            for k in range(j - 1, -1, -1):
                total += atoms[k].pieces
                if total > budget and k < j - 1:
                    break
                before = best[k]
                if before is None:
                    continue
                cost = (before[0] + 1, before[1] + (total < small),
                        before[2] + (strength.get(atoms[k].start, BLOCK) if k else 0),
                        before[3] + total * total)
                if best[j] is None or cost < best[j]:
                    best[j], back[j] = cost, k
        groups: list[list[_Atom]] = []
        j = len(atoms)
        while j > 0:
            groups.append(atoms[back[j]:j])
            j = back[j]
        return groups[::-1]

    # ---- exact counts

    def _count_chunks(self, plans: dict[int, list[list[_Atom]]]) -> dict[int, list[tuple[int, int, int]]]:
        """(start, end, exact tokens) of every planned chunk; one that does not fit is halved."""
        done: dict[int, list[tuple[int, int, int]]] = {i: [] for i in plans}
        pending: list[tuple[int, list[_Atom]]] = []
        for i, groups in plans.items():
            for group in groups:
                known = self.counter.known_tokens(self.overhead[i], group)
                if known is not None and known <= self.max_tokens:
                    done[i].append((group[0].start, group[-1].end, known))
                else:
                    pending.append((i, group))
        while pending:
            sections = [self.sections[i] for i, _ in pending]
            texts = [_embedding_text(sec.path, sec.text[g[0].start:g[-1].end])
                     for sec, (_, g) in zip(sections, pending)]
            retry = []
            for (i, group), tokens in zip(pending, self.count(texts)):
                halves = [] if tokens <= self.max_tokens else _halves(group, self.sections[i].text)
                if halves:
                    retry.extend((i, half) for half in halves)
                else:  # fits, or one visible character (the path is capped at half the window)
                    done[i].append((group[0].start, group[-1].end, tokens))
            pending = retry
        for spans in done.values():
            spans.sort()
        return done


def _halves(group: list[_Atom], text: str) -> list[list[_Atom]]:
    """Two non-blank halves of a chunk that did not fit (by atoms, else by characters), or []."""
    if len(group) > 1:
        total, running = sum(a.pieces for a in group), 0
        for k, atom in enumerate(group[:-1]):
            running += atom.pieces
            if running * 2 >= total:
                return [group[: k + 1], group[k + 1:]]
        return [group[:-1], group[-1:]]
    atom = group[0]
    cuts = _keep_nonblank_pieces(text, atom.start, atom.end, [((atom.start + atom.end) // 2, CHARACTER)])
    if not cuts:  # the visible text is on one side of the middle: cut after its first character
        visible = len(text[atom.start:atom.end]) - len(text[atom.start:atom.end].lstrip())
        cuts = _keep_nonblank_pieces(text, atom.start, atom.end, [(atom.start + visible + 1, CHARACTER)])
    if not cuts:
        return []
    middle = cuts[0][0]
    return [[_Atom(atom.start, middle, atom.pieces // 2, CHARACTERS)],
            [_Atom(middle, atom.end, atom.pieces - atom.pieces // 2, CHARACTERS)]]


def _shorten_path(path: tuple[str, ...]) -> tuple[str, ...]:
    longest = max(range(len(path)), key=lambda n: len(path[n]))
    title = path[longest]
    if len(title) > 16:
        cut = title[: len(title) * 2 // 3]
        if " " in cut[8:]:
            cut = cut.rsplit(" ", 1)[0]
        return path[:longest] + (cut.rstrip() + "…",) + path[longest + 1:]
    if len(path) > 1:
        return path[1:]
    return (title[: len(title) // 2],) if len(title) > 1 else path


def _between(offsets: Sequence[int], start: int, end: int) -> Sequence[int]:
    return offsets[bisect.bisect_right(offsets, start):bisect.bisect_left(offsets, end)]


def _keep_nonblank_pieces(text: str, start: int, end: int,
                          cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The cuts moved so that no piece is whitespace only (it would become an empty chunk).

    Whitespace joins the piece before it: a cut just before a blank line moves to just after it.
    """
    kept: list[tuple[int, int]] = []
    last = start
    for offset, strength in cuts:
        if text[last:offset].strip():
            kept.append((offset, strength))
        elif kept:
            kept[-1] = (offset, min(kept[-1][1], strength))
        else:
            continue  # leading whitespace: it stays with the first piece
        last = offset
    while kept and not text[kept[-1][0]:end].strip():
        kept.pop()
    return kept
