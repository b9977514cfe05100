"""One slot in, one verified artifact out: fetch → clean → chunk → embed → write.

This is the unit of work `doit scrape:<slug>` and `deadzone-build scrape` schedule. A slot whose
artifact is current is skipped; a slot whose fetch fails past the threshold raises `ScrapeError`
and leaves any previous artifact untouched (nothing is written before the end).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deadzone_build.errors import ScrapeError
from deadzone_build.sources import fetch
from deadzone_build.pipeline.artifact import artifact_is_current, write_artifact
from deadzone_build.pipeline.chunk import Chunk, chunk_markdown, embedding_text
from deadzone_build.registry.keys import SlotKey, keyed
from deadzone_build.embed import model_files
from deadzone_build.embed.pin import MAX_SEQ_LENGTH, pin_id
from deadzone_build.embed.protocol import TextEmbedder
from deadzone_build.registry.load import Slot
from deadzone_build.embed.vector_cache import VectorCache, embed_cached
from deadzone_build.freshness.verify import check_against_lock, lock_on_first_use
from deadzone_build.sources import ProgressFn, SourceContext, SourceResult, source_for



@dataclass
class ScrapeOutcome:
    slot: Slot
    status: str  # "scraped" | "up-to-date"
    path: Path
    docs_ok: int = 0
    docs_dropped: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks actually run through the model (the rest came from the vector cache)
    truncated: int = 0  # chunks longer than the model window (cut by the embedder; the chunker prevents it)
    seconds: dict[str, float] = field(default_factory=dict)  # fetch / chunk / embed / write
    dropped: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # URLs dropped for a cause that may pass
    notes: list[str] = field(default_factory=list)  # one line each, e.g. a corrupt vector cache rebuilt

    def line(self) -> str:
        """The one line users see per slot."""
        if self.status == "up-to-date":
            return f"up-to-date {self.slot.label}"
        drops = f" ({self.docs_dropped} dropped)" if self.docs_dropped else ""
        cut = f", {self.truncated} TRUNCATED at the model window (a chunker bug: please report it)" if self.truncated else ""
        total = sum(self.seconds.values())
        partial = (f"; INCOMPLETE: {len(self.incomplete)} URL{'s' * (len(self.incomplete) != 1)} failed for a "
                   "reason that may pass, so the next run scrapes it again" if self.incomplete else "")
        return (f"scraped    {self.slot.label}: {self.docs_ok} docs{drops}, {self.chunks} chunks "
                f"({self.embedded} embedded, {self.chunks - self.embedded} cached{cut}) in {total:.1f}s{partial}")


_embedders: dict[Path, Any] = {}
_embedders_lock = threading.Lock()


def shared_embedder(cache_dir: Path) -> TextEmbedder:
    """One Embedder per process and cache dir (an ONNX session is thread-safe and costly to load)."""
    from deadzone_build.embed.embedder import Embedder  # imported late: `list`, `explain` and doit no-ops need no model

    key = Path(cache_dir).resolve()
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = Embedder(Path(cache_dir))
        return _embedders[key]


def library_text(slot: Slot) -> str:
    """What the library vector embeds: the lib_id's words, the version and the description."""
    words = " ".join(slot.lib_id.strip("/").replace("/", " ").replace("-", " ").replace("_", " ").split())
    head = f"{words} {slot.version}".strip()
    return f"{head}: {slot.description}" if slot.description else head


def scrape_slot(slot: Slot, *, artifacts_dir: Path, cache_dir: Path, client: httpx.Client | None = None,
                fetch_settings: fetch.FetchSettings | None = None, embedder: TextEmbedder | None = None,
                progress: ProgressFn | None = None, force: bool = False,
                key: SlotKey | None = None, lock_path: Path | None = None) -> ScrapeOutcome:
    """Build `artifacts_dir/<slug>/` for `slot` unless a verified artifact with its key is there.

    `key`: the slot's SlotKey when the caller already has it (the doit task computed it for its
    up-to-date check); computed here otherwise. What is fetched must match the slot's lock entry
    (freshness/verify.py); a slot without one is locked on first use into `lock_path` (None: no
    lock file, the slot stays unlocked)."""
    key = key or keyed(slot)
    target = Path(artifacts_dir) / slot.slug
    if not force and artifact_is_current(target, key.key):
        return ScrapeOutcome(slot, "up-to-date", target)
    collect = source_for(slot)
    settings = fetch_settings or fetch.FetchSettings.from_env()
    outcome = ScrapeOutcome(slot, "scraped", target)
    tick = progress or (lambda stage, done, total: None)

    started = time.perf_counter()
    client = client or fetch.shared_client(settings)  # one per process: no SSL context per slot
    source = collect(slot, SourceContext(client, settings, tick, cache_dir=Path(cache_dir)))
    outcome.seconds["fetch"] = time.perf_counter() - started
    check_against_lock(slot, source.reports)
    # A fetch with transient drops is never locked: the lock would record "nothing" for those URLs
    # and refuse them once they answer. The slot stays unlocked and is locked by a complete scrape.
    if not slot.lock and lock_path is not None and not fetch.incomplete_urls(source.reports):
        slot = lock_on_first_use(slot, source.reports, lock_path)
        check_against_lock(slot, source.reports)  # another process may have locked it first
        key = keyed(slot)
        outcome.slot = slot
        if not force and artifact_is_current(target, key.key):
            return ScrapeOutcome(slot, "up-to-date", target)

    started = time.perf_counter()
    chunks, reports = _chunk_documents(source, model_files.TokenCounter(cache_dir))
    outcome.seconds["chunk"] = time.perf_counter() - started
    if not chunks:
        raise ScrapeError(f"{slot.label}: no artifact written: its documents gave 0 chunks (every body was "
                          "empty or held no text once cleaned). Check the URLs in the registry.")
    outcome.incomplete = fetch.incomplete_urls(reports)

    started = time.perf_counter()
    embedder = embedder or shared_embedder(cache_dir)
    cache = VectorCache(cache_dir, pin_id(), log=outcome.notes.append)
    texts = [embedding_text(c) for c in chunks]
    vectors, outcome.embedded = embed_cached(texts, embedder, cache,
                                             progress=lambda done, total: tick("embed", done, total))
    library_vector = embedder.embed([library_text(slot)])[0]
    outcome.seconds["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    outcome.docs_ok = sum(1 for r in reports if r["status"] == "ok")
    outcome.docs_dropped = len(reports) - outcome.docs_ok
    outcome.chunks = len(chunks)
    outcome.dropped = [r for r in reports if r["status"] != "ok"]
    # c.tokens counts embedding_text(c) with the model's tokenizer: over the window is exactly what
    # the embedder cuts. The chunker makes it 0; a nonzero count is reported, never hidden.
    outcome.truncated = sum(1 for c in chunks if c.tokens > MAX_SEQ_LENGTH)
    counts = {"urls": len(reports), "docs_ok": outcome.docs_ok, "docs_dropped": outcome.docs_dropped,
              "chunks": len(chunks), "tokens": sum(c.tokens for c in chunks), "truncated": outcome.truncated}
    write_artifact(Path(artifacts_dir), slot, key=key.key, key_inputs=key.inputs, pin_id=key.pin_id,
                   chunks=[c.record() for c in chunks], vectors=vectors, library_vector=library_vector,
                   url_reports=reports, counts=counts, incomplete=bool(outcome.incomplete))
    outcome.seconds["write"] = time.perf_counter() - started
    return outcome


def _chunk_documents(source: SourceResult, count_tokens: model_files.TokenCounter
                     ) -> tuple[list[Chunk], list[dict[str, Any]]]:
    """Chunks of every document, numbered across the slot, and the per-URL report with chunk counts.

    `count_tokens` reads the embedder's own verified tokenizer.json (the cache's, or the installed
    model package's), so every chunk fits the window the embedder cuts at."""
    chunks: list[Chunk] = []
    per_url: dict[str, int] = {}
    for document in source.documents:
        doc_chunks = chunk_markdown(document.markdown, document.url, max_tokens=MAX_SEQ_LENGTH,
                                    count_tokens=count_tokens)
        per_url[document.source_url] = per_url.get(document.source_url, 0) + len(doc_chunks)
        chunks.extend(doc_chunks)
    reports = [{**report, "chunks": per_url.get(report["url"], 0) if report["status"] == "ok" else 0}
               for report in source.reports]
    return [dataclasses.replace(c, ordinal=i) for i, c in enumerate(chunks)], reports

