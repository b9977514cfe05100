"""Kind `scrape-via-agent`: documentation pages over HTTP → markdown, with or without an endpoint.

Per URL (fetched by sources/fetch.py: shared retries, caps, rewrite):

    text/html, application/xhtml+xml          extract.py → markdown (deterministic); with an endpoint,
                                              each section of that markdown goes through it (below)
    text/markdown, text/x-markdown, text/plain cleaned like `github-md`, never sent to the endpoint
                                              (already markdown: nothing to extract)
    no Content-Type, or text/plain            HTML if it starts like an HTML document (a mislabelled
                                              page, or a raw mirror such as tests/serve_mirror.py), else markdown
    anything else (PDF, images, …)            a soft drop: reported with its type, not counted
                                              against the slot (it only fails when no page is left)
    a page whose main content has no text     a soft drop too (typically a page rendered by JavaScript),
    or that html-to-markdown refuses          and so is a page the converter refuses

With an endpoint (route.py), a page's markdown is split by section into pieces of at most
`max_input_bytes` (sections.py: nothing is cut off), each piece is answered from the answer cache
(answers.py) or by the endpoint (endpoint.py), stripped of a `<think>` block or a fence around it
all, and checked (verify.py). A piece whose
answer fails the check, or that gets no answer within the retries and deadline, or that is a single
block over the cap, keeps its deterministic markdown; the per-URL report lists each such fallback
with its reason. The ping runs only when some piece is not in the cache, so a build the cache fully
answers needs no endpoint at all.

The per-URL report adds, for this kind only: `content_type`, `route` ("deterministic", "endpoint"
or "served-markdown"), `code_blocks` (the `<pre>` blocks kept) and, on the endpoint route,
`sections`, `sections_from_endpoint` and `fallbacks` ([{section, reason}]).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deadzone_build import settings as paths
from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.clean import document_markdown
from deadzone_build.registry.load import Slot
from deadzone_build.sources import fetch
from deadzone_build.sources.agent.answers import AnswerCache, answer_digest
from deadzone_build.sources.agent.endpoint import Endpoint, EndpointFailed, EndpointSettings, request_body
from deadzone_build.sources.agent.extract import ExtractError, check_versions, extract_markdown
from deadzone_build.sources.agent.route import (DETERMINISTIC, ENDPOINT, PROMPT_VERSION, Route,
                                                RouteConfigError, route_from_env)
from deadzone_build.sources.agent.sections import split_pieces
from deadzone_build.sources.agent.verify import check_answer, code_blocks, tidy_answer
from deadzone_build.sources.base import Document, SourceContext, SourceResult

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown", "text/plain"})
SERVED_MARKDOWN = "served-markdown"
EMPTY_PAGE = ("no text in the page's main content (rendered by JavaScript?); link a page that holds the "
              "text, or remove the URL.")
_ENDPOINT_WORKERS = 4  # requests in flight per slot: endpoints are slow, and most serve a few at once


@dataclass
class _Page:
    result: fetch.FetchResult
    markdown: str
    route: str
    code_blocks: int
    pieces: list[str] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    fallbacks: list[dict[str, Any]] = field(default_factory=list)


def collect(slot: Slot, context: SourceContext) -> SourceResult:
    """Fetch every page of the slot and turn each into one markdown document."""
    try:
        route = route_from_env()
    except RouteConfigError as exc:
        raise ScrapeError(f"{slot.label}: {exc}") from None
    check_versions()
    results = context.fetch_all(slot.urls)
    soft = [_soft_drop_reason(result) for result in results]
    counted = [result for result, reason in zip(results, soft) if reason is None]
    if not counted:
        listed = "; ".join(f"{r.url} ({reason})" for r, reason in zip(results, soft))
        raise ScrapeError(f"{slot.label}: no artifact written: no URL is a page this kind reads: {listed}.")
    failure = fetch.slot_failure(counted, max_drop_fraction=fetch.MAX_DROP_FRACTION)
    if failure:
        raise ScrapeError(f"{slot.label}: no artifact written (the previous one, if any, is untouched): {failure}")
    pages = [_page(result, route) if reason is None and result.ok and result.text is not None else None
             for result, reason in zip(results, soft)]
    for index, page in enumerate(pages):
        if isinstance(page, str):  # the converter refused it
            pages[index], soft[index] = None, page
        elif page is not None and not page.markdown.strip():
            pages[index], soft[index] = None, EMPTY_PAGE
    if not any(pages):
        listed = "; ".join(f"{r.url} ({reason or r.reason})" for r, reason in zip(results, soft))
        raise ScrapeError(f"{slot.label}: no artifact written: no page gave any text: {listed}.")
    if route.name == ENDPOINT:
        _answer(slot, [page for page in pages if page is not None and page.route == ENDPOINT], route, context)
    documents: list[Document] = []
    reports: list[dict[str, Any]] = []
    for result, reason, page in zip(results, soft, pages):
        report = {**result.report(), "content_type": result.content_type}
        if reason is not None:
            report.update(status="dropped", reason=reason)
        elif page is not None:
            markdown = _assemble(page)
            documents.append(Document(url=result.url, markdown=markdown, source_url=result.url))
            report.update(route=page.route, code_blocks=page.code_blocks)
            if page.route == ENDPOINT:
                report.update(sections=len(page.pieces), fallbacks=page.fallbacks,
                              sections_from_endpoint=len(page.pieces) - len(page.fallbacks))
        reports.append(report)
    return SourceResult(documents, reports)


def _soft_drop_reason(result: fetch.FetchResult) -> str | None:
    media = result.content_type
    if media is None or media in HTML_TYPES or media in MARKDOWN_TYPES:
        return None
    return (f"content type {media} is not a documentation page (scrape-via-agent reads HTML, markdown and "
            "plain text); link the HTML version or remove the URL.")


def _is_html(result: fetch.FetchResult) -> bool:
    if result.content_type in HTML_TYPES:
        return True
    if result.content_type not in (None, "text/plain"):
        return False
    head = (result.text or "").lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html", "<?xml")) or "<html" in head


def _page(result: fetch.FetchResult, route: Route) -> _Page | str:
    """The page's markdown, or why it cannot be read (a soft drop)."""
    text = result.text or ""
    if not _is_html(result):
        markdown = document_markdown(text, kind="github-md", url=result.url)
        return _Page(result, markdown, SERVED_MARKDOWN, len(code_blocks(markdown)))
    try:
        extraction = extract_markdown(text, result.url)
    except ExtractError as exc:
        return str(exc)
    return _Page(result, extraction.markdown, route.name, len(extraction.code_blocks))


# ── the endpoint route ───────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Job:
    page: _Page
    index: int
    body: dict[str, Any]
    digest: str


def _answer(slot: Slot, pages: list[_Page], route: Route, context: SourceContext) -> None:
    """Fill every page's `answers` (None where the deterministic piece stays) and `fallbacks`."""
    settings = EndpointSettings.from_env(context.settings)
    cache = AnswerCache(context.cache_dir or paths.cache_dir())
    model = route.model or ""  # route_from_env never builds an endpoint route without one
    jobs: list[_Job] = []
    for page in pages:
        page.pieces = split_pieces(page.markdown, settings.max_input_bytes)
        page.answers = [None] * len(page.pieces)
        for index, piece in enumerate(page.pieces):
            if len(piece.encode("utf-8")) > settings.max_input_bytes:
                page.fallbacks.append({"section": index, "reason": f"one block over the input cap of "
                                       f"{settings.max_input_bytes} bytes: kept as extracted"})
                continue
            body = request_body(model, piece)
            jobs.append(_Job(page, index, body, answer_digest(model, PROMPT_VERSION, body)))
    cached_answers = {job.digest: cache.get(job.digest) for job in jobs}  # each entry read once
    missing = [job for job in jobs if cached_answers[job.digest] is None]
    total = len(jobs)
    done = 0
    lock = threading.Lock()

    def tick() -> None:
        nonlocal done
        with lock:
            done += 1
            context.progress("agent", done, total)

    with Endpoint(route, settings) as endpoint:
        if missing:
            try:
                endpoint.ping()  # fail in seconds, before any page waits on a dead endpoint
            except ScrapeError as exc:
                raise ScrapeError(f"{slot.label}: {exc} ({len(missing)} of {total} sections are not in the "
                                  f"answer cache {cache.root})") from None

        def run(job: _Job) -> tuple[_Job, str | None, str | None]:
            try:
                cached = cached_answers[job.digest]
                raw = cached if cached is not None else endpoint.chat(job.body)
            except EndpointFailed as exc:
                tick()
                return job, None, f"endpoint: {exc}; kept as extracted"
            problem, checked = check_answer(tidy_answer(raw),
                                            [b.content for b in code_blocks(job.page.pieces[job.index])])
            if problem is None and cached is None:
                cache.put(job.digest, raw, model=model)
            tick()
            return job, (checked if problem is None else None), (f"{problem}; kept as extracted" if problem else None)

        with ThreadPoolExecutor(max_workers=_ENDPOINT_WORKERS, thread_name_prefix="agent") as pool:
            outcomes = list(pool.map(run, jobs))
    for job, answer, problem in outcomes:
        job.page.answers[job.index] = answer
        if problem is not None:
            job.page.fallbacks.append({"section": job.index, "reason": problem})
    for page in pages:
        page.fallbacks.sort(key=lambda fallback: fallback["section"])


def _assemble(page: _Page) -> str:
    if page.route != ENDPOINT:
        return page.markdown
    parts = [answer if answer is not None else piece for piece, answer in zip(page.pieces, page.answers)]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


__all__ = ["collect", "DETERMINISTIC", "ENDPOINT", "SERVED_MARKDOWN"]
