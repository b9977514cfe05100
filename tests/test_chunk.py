"""Chunking: heading paths, the model window, code fences, recoverability, on real docs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from deadzone_build.embed import model_files
from deadzone_build.pipeline.chunk import Chunk, chunk_markdown, embedding_text
from deadzone_build.pipeline.sections import section_texts
from deadzone_build.pipeline.clean import clean_markdown, document_markdown
from deadzone_build.pipeline.markdown import code_line_ranges

FIXTURES = Path(__file__).parent / "fixtures"
MD = FIXTURES / "md"
MIRROR = FIXTURES / "docs-mirror"
MAX = 256


def count(texts: list[str]) -> list[int]:
    return model_files.count_tokens(texts)


def sections_with_chunks(markdown: str, chunks: list[Chunk]) -> list[tuple[tuple[str, ...], str, list[Chunk]]]:
    """Each non-empty section with the chunks that make it up, by the documented rule:
    a section's chunks are the next chunks whose texts, joined with "", give its text."""
    grouped, k = [], 0
    for path, text in section_texts(markdown):
        if not text.strip():
            continue
        mine: list[Chunk] = []
        while len("".join(c.text for c in mine)) < len(text):
            mine.append(chunks[k])
            k += 1
        grouped.append((path, text, mine))
    assert k == len(chunks)
    return grouped


def sentences(n: int, topic: str = "widget") -> str:
    return " ".join(f"Sentence {i} explains one more detail of the {topic} toolkit and its options."
                    for i in range(n))


# --------------------------------------------------------------------------- the mirror


@pytest.fixture(scope="module")
def mirror() -> list[tuple[str, str, list[Chunk]]]:
    index = json.loads((MIRROR / "index.json").read_text())
    out = []
    for url, entry in index.items():
        body = (MIRROR / "files" / entry["sha256"]).read_text(encoding="utf-8")
        markdown = document_markdown(body, kind="github-md", url=url)
        out.append((url, markdown, chunk_markdown(markdown, url)))
    return out


def test_mirror_has_every_document(mirror: list) -> None:
    urls = [url for url, _, _ in mirror]
    assert len(urls) == 324
    assert sum(u.endswith(".md") for u in urls) == 267 and sum(u.endswith(".mdx") for u in urls) == 57
    assert sum(len(chunks) for _, _, chunks in mirror) > 5000


def test_mirror_chunks_fit_and_carry_exact_counts(mirror: list) -> None:
    chunks = [c for _, _, cs in mirror for c in cs]
    recount = count([embedding_text(c) for c in chunks])
    assert [c.tokens for c in chunks] == recount
    assert max(recount) <= MAX
    for url, _, cs in mirror:
        assert [c.ordinal for c in cs] == list(range(len(cs)))
        assert all(c.url == url and c.text.strip() for c in cs)


def test_mirror_sections_are_recoverable_from_their_chunks(mirror: list) -> None:
    for url, markdown, chunks in mirror:
        grouped = sections_with_chunks(markdown, chunks)
        path_cost = count([" > ".join(path) for path, _, _ in grouped])
        for (path, text, mine), cost in zip(grouped, path_cost):
            assert "".join(c.text for c in mine) == text, url
            if cost <= MAX // 2:  # else the path is shortened (see the test below)
                assert all(c.heading_path == path for c in mine), url


def test_mirror_fences_that_fit_stay_whole(mirror: list) -> None:
    checked = 0
    for url, markdown, chunks in mirror:
        for path, text, mine in sections_with_chunks(markdown, chunks):
            blocks = ["\n".join(text.split("\n")[a:b]) for a, b in code_line_ranges(text)]
            fitting = [b for b, n in zip(blocks, count([embedding_text(Chunk("", path, 0, b, 0))
                                                       for b in blocks])) if n <= MAX]
            for block in fitting:
                assert block in markdown and any(block in c.text for c in mine), f"{url}: {block[:60]!r}"
                checked += 1
    assert checked > 2500


def test_mirror_has_no_tiny_chunk_that_could_merge(mirror: list) -> None:
    pairs = []
    for _, markdown, chunks in mirror:
        for _, _, mine in sections_with_chunks(markdown, chunks):
            pairs.extend(zip(mine, mine[1:]))
    alone = count([t for a, b in pairs for t in (a.text, b.text)])
    tiny = [(a, b) for (a, b), na, nb in zip(pairs, alone[::2], alone[1::2]) if min(na, nb) < 48]
    merged = count([embedding_text(Chunk("", a.heading_path, 0, a.text + b.text, 0)) for a, b in tiny])
    assert all(n > MAX for n in merged)


def test_offset_counting_equals_counting_every_chunk(mirror: list) -> None:
    """The fast path (token offsets of one encoding) and the plain path (count_tokens on every
    piece and chunk) must give the same chunks, so the fast path's arithmetic is exact."""
    def plain(texts: list[str]) -> list[int]:
        return model_files.count_tokens(texts)

    for url, markdown, chunks in mirror:
        assert chunk_markdown(markdown, url, count_tokens=plain) == chunks, url


def test_chunking_is_deterministic(mirror: list) -> None:
    for url, markdown, chunks in mirror[::8]:
        assert chunk_markdown(markdown, url) == chunks


# --------------------------------------------------------------------------- headings


def test_heading_paths_on_a_hand_written_doc() -> None:
    markdown = clean_markdown((MD / "headings.md").read_text())
    paths = [(path, text.split("\n")[0]) for path, text in section_texts(markdown)]
    deep = ("Configuration", "Environment variables", "Deep emphasised linked title")
    assert paths == [
        ((), ""),
        (("Widget Toolkit",), "Widgets are small, composable UI elements."),
        (("Widget Toolkit", "Installation"), "Install the package with your package manager."),
        (("Widget Toolkit", "Installation", "From source"), "Clone the repository and build it:"),
        (("Widget Toolkit", "Installation", "With `pip`"), "~~~python"),
        (("Configuration",), "Settings live in `widgets.toml`."),
        (("Configuration", "Environment variables"), "    # an indented code block: still not a heading"),
        (deep, "Four levels down."),
        (deep + ("Five",), ""),
        (deep + ("Five", "Six"), "Text under six."),
        (("Configuration", "API reference"), "````markdown"),
        ((), "Text under an empty heading."),
        (("Appendix",), "The end."),
    ]
    texts = dict(section_texts(markdown))
    assert "> # A heading inside a block quote belongs to its section" in texts[("Configuration", "Environment variables")]
    assert texts[("Configuration", "API reference")].endswith("## not a heading either\n````")


def test_chunks_carry_heading_paths_and_never_cross_sections() -> None:
    markdown = clean_markdown((MD / "headings.md").read_text())
    chunks = chunk_markdown(markdown, "u")
    non_empty = [(p, t) for p, t in section_texts(markdown) if t.strip()]
    assert [(c.heading_path, c.text) for c in chunks] == non_empty


def test_unclosed_fence_runs_to_the_end() -> None:
    markdown = clean_markdown((MD / "unclosed_fence.md").read_text())
    assert [p for p, _ in section_texts(markdown)] == [(), ("Notes",)]


def test_embedding_text() -> None:
    assert embedding_text(Chunk("u", ("A", "B"), 0, "text", 5)) == "A > B\n\ntext"
    assert embedding_text(Chunk("u", (), 0, "text", 3)) == "text"


def test_empty_documents_have_no_chunks() -> None:
    assert chunk_markdown("", "u") == []
    assert chunk_markdown("\n\n   \n", "u") == []
    assert chunk_markdown("# Only a heading\n\n## And another\n", "u") == []


# --------------------------------------------------------------------------- splitting


def long_section(body: str) -> str:
    return f"# Guide\n\n## Long part\n\n{body}\n"


def check(markdown: str, max_tokens: int = MAX, **kwargs: object) -> list[Chunk]:
    """Chunk, then check the contract: fit, exact counts, recoverability."""
    chunks = chunk_markdown(markdown, "u", max_tokens=max_tokens, **kwargs)
    counter = kwargs.get("count_tokens", count)
    assert [c.tokens for c in chunks] == counter([embedding_text(c) for c in chunks])
    assert all(c.tokens <= max_tokens and c.text.strip() for c in chunks)
    for _, text, mine in sections_with_chunks(markdown, chunks):
        assert "".join(c.text for c in mine) == text
    return chunks


@pytest.mark.parametrize("opener, closer", [("```go", "```"), ("~~~go", "~~~"), ("````go", "````")])
def test_a_fence_that_fits_stays_whole_in_a_split_section(opener: str, closer: str) -> None:
    code = "\n".join(f"\tclient.Pet.Create().SetName(\"pet{i}\").SaveX(ctx) // #{i}" for i in range(6))
    fence = f"{opener}\n{code}\n{closer}"
    markdown = long_section(f"{sentences(7)}\n\nThe example:\n\n{fence}\n\n{sentences(7, 'pet')}")
    chunks = check(markdown)
    assert len(chunks) >= 2
    assert sum(fence in c.text for c in chunks) == 1
    assert all(c.text.count(closer) in (0, 2) for c in chunks if opener in c.text or closer in c.text)


def test_a_fence_too_long_for_the_window_splits_between_its_lines() -> None:
    code = "\n".join(f"    value_{i} = compute(value_{i - 1}, factor={i})  # step {i}" for i in range(1, 120))
    markdown = long_section(f"Setup:\n\n```python\n{code}\n```")
    chunks = check(markdown)
    assert len(chunks) >= 4
    assert all(c.text.endswith("\n") for c in chunks[:-1])  # cut at line ends only
    assert chunks[0].text.startswith("Setup:\n\n```python\n") and chunks[-1].text.endswith("```")


def test_a_long_paragraph_splits_at_sentences() -> None:
    chunks = check(long_section(sentences(60)))
    assert len(chunks) >= 3
    assert all(c.text.endswith("options. ") for c in chunks[:-1])


def test_a_long_line_without_sentences_splits_at_words() -> None:
    line = " ".join(f"word{i}" for i in range(900))
    chunks = check(long_section(line))
    assert len(chunks) >= 3
    assert all(c.text.endswith(" ") for c in chunks[:-1])


def test_one_enormous_word_splits_by_characters() -> None:
    # minified JSON: no whitespace to cut at (a long run of letters alone would be one [UNK])
    blob = "{" + ",".join(f'"key{i}":[{i},"v{i}"]' for i in range(400)) + "}"
    chunks = check(long_section(f"Payload:\n\n{blob}"))
    assert len(chunks) >= 3


def test_paragraphs_are_preferred_over_lines_and_tiny_pieces_merge() -> None:
    body = f"{sentences(9)}\n\nSee below.\n\n{sentences(9, 'pet')}"
    chunks = check(long_section(body))
    assert len(chunks) == 2
    assert all(count([c.text])[0] >= 48 for c in chunks)
    assert chunks[0].text.endswith("\n\n") and not chunks[1].text.startswith("\n")


def test_a_very_long_heading_path_is_shortened_to_leave_room() -> None:
    title = " ".join(f"heading{i}" for i in range(150))
    markdown = f"# Guide\n\n## {title}\n\n{sentences(30)}\n"
    chunks = check(markdown)
    assert chunks and all(c.heading_path == chunks[0].heading_path for c in chunks)
    outer, inner = chunks[0].heading_path
    assert outer == "Guide" and inner.endswith("…") and title.startswith(inner[:-1])
    assert count([" > ".join(chunks[0].heading_path)])[0] <= MAX // 2


def test_many_short_headings_lose_the_outer_ones() -> None:
    markdown = "".join(f"{'#' * min(n, 6)} Level {n} heading\n\n" for n in range(1, 7)) + sentences(3)
    chunks = check(markdown, max_tokens=24, min_tokens=4)
    assert chunks and all(count([" > ".join(c.heading_path)])[0] <= 12 for c in chunks)


def test_smaller_window() -> None:
    markdown = clean_markdown((MD / "mdx_page.mdx").read_text()) + "\n" + sentences(20)
    chunks = check(markdown, max_tokens=64, min_tokens=16)
    assert len(chunks) > 5


def test_any_counter_can_be_passed_in() -> None:
    def words(texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def characters(texts: list[str]) -> list[int]:  # does not add up across pieces
        return [math.ceil(len(t) / 3) + 2 for t in texts]

    markdown = long_section(f"{sentences(40)}\n\n```\n{'x = 1' * 400}\n```\n\n{'y' * 3000}")
    for counter in (words, characters):
        chunks = check(markdown, count_tokens=counter)
        assert len(chunks) > 3


def test_a_huge_single_line_is_cut_in_few_steps() -> None:
    line = " ".join(f"w{i}" for i in range(40_000))  # a minified dump, one line
    chunks = check(long_section(line))
    assert all(c.text.endswith(" ") for c in chunks[:-1])
    assert sum(c.tokens for c in chunks) / len(chunks) > MAX * 3 // 4  # still well filled
