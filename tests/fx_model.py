"""Embedder fixtures: the int8 model is built ONCE per test session (about 15 s) and shared.

    embedder_cache   a cache directory holding cache/embedder/<pin>/model.onnx
    embedder         a loaded Embedder on that cache (thread-safe to call; do not mutate)

`docs_chunks` is the fixture corpus of real documentation text (tests and bench/embed.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from deadzone_build.embed.embedder import Embedder, ensure_model
from deadzone_build.embed.model_files import MAX_SEQ_LENGTH, load_tokenizer

MIRROR_FILES = Path(__file__).resolve().parent / "fixtures" / "docs-mirror" / "files"


def docs_paragraphs(min_chars: int = 20) -> Iterator[str]:
    """Distinct blank-line-separated paragraphs of the docs mirror, in file-name order."""
    seen: set[str] = set()
    for path in sorted(MIRROR_FILES.iterdir()):
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            paragraph = paragraph.strip()
            if len(paragraph) >= min_chars and paragraph not in seen:
                seen.add(paragraph)
                yield paragraph


def fit_window(text: str, window: int = MAX_SEQ_LENGTH) -> str:
    """`text` cut at a word-piece boundary so that it encodes to at most `window` pieces."""
    tokenizer = load_tokenizer(truncate=False)
    keep = window - 2  # [CLS] and [SEP]
    while True:
        encoding = tokenizer.encode(text)
        if len(encoding.ids) <= window:
            return text
        text = text[: encoding.offsets[keep][1]].rstrip()
        keep -= 1


def docs_chunks(limit: int, pack_to: int = 180, window: int = MAX_SEQ_LENGTH) -> list[str]:
    """Up to `limit` chunks: consecutive paragraphs packed to about `pack_to` word pieces, each
    cut to fit `window`. Deterministic; lengths vary from a few pieces to the full window."""
    tokenizer = load_tokenizer(truncate=False)
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in docs_paragraphs():
        pieces = len(tokenizer.encode(paragraph, add_special_tokens=False).ids)
        if current and size + pieces > pack_to:
            chunks.append(fit_window("\n\n".join(current), window))
            current, size = [], 0
            if len(chunks) == limit:
                return chunks
        current.append(paragraph)
        size += pieces
    if current and len(chunks) < limit:
        chunks.append(fit_window("\n\n".join(current), window))
    return chunks


@pytest.fixture(scope="session")
def embedder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory with the embedding model already built (once per session)."""
    cache = tmp_path_factory.mktemp("embedder-cache")
    ensure_model(cache)
    return cache


@pytest.fixture(scope="session")
def embedder(embedder_cache: Path) -> Embedder:
    """The product Embedder, loaded once per session."""
    return Embedder(embedder_cache)
