"""The source interface: Slot in, Documents and a per-URL report out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import httpx

from deadzone_build.errors import ScrapeError
from deadzone_build.registry.load import Slot
from deadzone_build.sources.fetch import TEXT_ACCEPT, Accept, FetchResult, FetchSettings, fetch_all

# (stage, done, total): stage is "fetch" (URLs) or "embed" (chunks)
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Document:
    """One document of a slot: cleaned markdown whose headings become chunk heading paths.

    `url` is stored with every chunk; `source_url` is the registry URL it came from (the
    per-URL report counts its chunks). For one-file-per-URL kinds both are the same.
    """

    url: str
    markdown: str
    source_url: str


@dataclass
class SourceResult:
    documents: list[Document]
    reports: list[dict[str, Any]]  # one per registry URL, in registry order (meta.json "urls")


@dataclass
class SourceContext:
    client: httpx.Client
    settings: FetchSettings
    progress: ProgressFn = field(default=lambda stage, done, total: None)
    cache_dir: Path | None = None  # for sources that cache (scrape-via-agent's answers); None: $DEADZONE_CACHE

    def fetch_all(self, urls: Sequence[str], accept: Accept = TEXT_ACCEPT) -> list[FetchResult]:
        """`fetch.fetch_all` through this context's client and settings, reporting "fetch" progress;
        `accept`: the bodies this kind takes (default any UTF-8 text; github-md passes DOC_ACCEPT)."""
        done = 0
        lock = threading.Lock()

        def on_result(_: FetchResult) -> None:
            nonlocal done
            with lock:
                done += 1
                self.progress("fetch", done, len(urls))

        return fetch_all(list(urls), self.client, self.settings, on_result=on_result, accept=accept)


class Source(Protocol):
    def __call__(self, slot: Slot, context: SourceContext) -> SourceResult: ...


def _registry() -> dict[str, Source]:
    from deadzone_build.sources import agent, github_docs, godoc

    return {"github-md": github_docs.collect, "github-rst": github_docs.collect, "godoc": godoc.collect,
            "scrape-via-agent": agent.collect}


def source_for(slot: Slot) -> Source:
    """The `collect` function of the slot's kind, or a ScrapeError saying which kinds work."""
    sources = _registry()
    if slot.kind not in sources:
        raise ScrapeError(f"{slot.label}: kind `{slot.kind}` is not supported by this build yet "
                          f"(supported: {', '.join(sources)}). Remove the entry or build other slots "
                          "with `doit scrape:<slug>`.")
    return sources[slot.kind]
