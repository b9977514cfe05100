"""Kinds `github-md` and `github-rst`: one markdown or RST file per URL."""

from __future__ import annotations

from typing import Any

from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.clean import clean_document
from deadzone_build.registry.load import Slot
from deadzone_build.sources import fetch
from deadzone_build.sources.base import Document, SourceContext, SourceResult


def collect(slot: Slot, context: SourceContext) -> SourceResult:
    """Fetch every URL of the slot and clean each body into markdown (RST through docutils)."""
    results = context.fetch_all(slot.urls)
    failure = fetch.slot_failure(results, max_drop_fraction=fetch.MAX_DROP_FRACTION)
    if failure:
        raise ScrapeError(f"{slot.label}: no artifact written (the previous one, if any, is untouched): {failure}")
    documents: list[Document] = []
    reports: list[dict[str, Any]] = []
    for result in results:
        report = result.report()
        if result.ok and result.text is not None:
            cleaned = clean_document(result.text, kind=slot.kind, url=result.url)
            documents.append(Document(url=result.url, markdown=cleaned.markdown, source_url=result.url))
            if cleaned.warning:  # only then: every other report (and meta.json) keeps its bytes
                report["warning"] = cleaned.warning
        reports.append(report)
    return SourceResult(documents, reports)

