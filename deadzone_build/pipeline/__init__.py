"""Pipeline stage: clean (markdown, RST) → chunk → scrape orchestration → artifact on disk.

`scrape.scrape_slot` is the unit of work of `doit scrape:<slug>`; `artifact` owns
`artifacts/<slug>/`; `explain` says why an artifact is (not) current; `markdown` is the parser
clean and chunk share. The names below are imported on first use (PEP 562), so importing one
light module (e.g. `artifact` for doit's up-to-date check) does not load docutils or the model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "clean_document": "clean", "document_markdown": "clean", "CleanedDocument": "clean",
    "Chunk": "chunk", "chunk_markdown": "chunk", "embedding_text": "chunk",
    "scrape_slot": "scrape", "ScrapeOutcome": "scrape",
    "artifact_is_current": "artifact", "read_artifact": "artifact", "write_artifact": "artifact",
    "explain_slot": "explain",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
