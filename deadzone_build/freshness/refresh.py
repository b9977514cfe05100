"""Refreshing `libraries_sources.lock` with cheap requests (`deadzone-build lock`).

Every URL is asked again with the validators the lock recorded (`If-None-Match`,
`If-Modified-Since`): an unchanged document answers 304 and costs no body. A URL without
validators, or one that answers 200, is read whole and its sha256 recorded. GitHub refs are
resolved to commit SHAs through the project's GitHub client (`GitHubClient.commit_sha`:
`GET /repos/{owner}/{repo}/commits/{ref}` with `Accept: application/vnd.github.sha`, its retry and
rate-limit policy), once per (repo, ref) however many slots share it. A request that fails keeps the entry's previous value and is reported:
a transient outage never rewrites the lock, so it never changes a key.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

import httpx

from deadzone_build.errors import DeadzoneError
from deadzone_build.publish.github import GitHubClient
from deadzone_build.registry.load import Slot
from deadzone_build.registry.lock import LockEntry, UrlLock
from deadzone_build.sources.fetch import FetchResult, FetchSettings, fetch_one

GitHubFor = Callable[[str], GitHubClient]  # "owner/repo" → the one GitHub client, for that repository
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Change:
    """One difference between the old lock and the new: `name` is a URL or `owner/repo@ref`."""

    slug: str
    name: str
    old: str | None
    new: str | None

    def line(self) -> str:
        return f"{self.slug}: {self.name}: {_short(self.old)} -> {_short(self.new)}"


@dataclass
class LockRefresh:
    entries: dict[str, LockEntry]
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: Counter = field(default_factory=Counter)  # "304", "200", "failed", "commit"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def note(self, request: str, error: str | None = None) -> None:
        """Count one request (and its error); called from the worker threads."""
        with self._lock:
            self.requests[request] += 1
            if error:
                self.errors.append(error)

    @property
    def stale(self) -> bool:
        return bool(self.changes)

    def changed_slugs(self) -> list[str]:
        return sorted({c.slug for c in self.changes})


def github_for_repos() -> GitHubFor:
    """One GitHub client per repository, all from the environment's token and API URL (settings)."""
    clients: dict[str, GitHubClient] = {}

    def client_for(repo: str) -> GitHubClient:
        if repo not in clients:
            clients[repo] = GitHubClient.from_settings(repo)
        return clients[repo]

    return client_for


def github_ref(url: str, ref: str) -> tuple[str, str, str] | None:
    """(owner, repo, ref) a GitHub URL is pinned to, or None (not GitHub, or no ref in it)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    host = (parts.hostname or "").lower()
    if host == "raw.githubusercontent.com" and len(segments) >= 3:
        return segments[0], segments[1], ref if ref and "/".join(segments[2:]).startswith(ref) else segments[2]
    if host == "api.github.com" and len(segments) >= 4 and segments[0] == "repos":
        pinned = parse_qs(parts.query).get("ref", [""])[0] or ref
        return (segments[1], segments[2], pinned) if pinned else None
    if host == "github.com" and len(segments) >= 4 and segments[2] in ("raw", "blob"):
        return segments[0], segments[1], ref if ref and "/".join(segments[3:]).startswith(ref) else segments[3]
    return None


def refresh_lock(slots: Iterable[Slot], old: Mapping[str, LockEntry], *, client: httpx.Client,
                 settings: FetchSettings, github: GitHubFor, only_missing: bool = False) -> LockRefresh:
    """The lock for `slots` after asking upstream again; entries of other slots are kept as they are."""
    slots = list(slots)
    result = LockRefresh(entries=dict(old))
    todo = [s for s in slots if not (only_missing and _current_entry(s, old) is not None)]
    previous = {s.slug: _current_entry(s, old) for s in todo}

    url_jobs = {}  # url → validators of a previous lock entry (the same URL in two slots is asked once)
    for slot in todo:
        for url in slot.urls:
            prior = previous[slot.slug].urls.get(url) if previous[slot.slug] else None
            url_jobs.setdefault(url, prior)
    repo_refs = sorted({rr for s in todo for u in s.urls if (rr := github_ref(u, s.ref))})

    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="lock") as pool:
        url_results = dict(zip(url_jobs, pool.map(lambda u: _ask_url(u, url_jobs[u], client, settings, result),
                                                  url_jobs)))
        commits = dict(zip(repo_refs, pool.map(lambda rr: _ask_commit(rr, github, result), repo_refs)))

    for slot in todo:
        prior = previous[slot.slug]
        urls = {url: url_results[url] or (prior.urls.get(url) if prior else None) or UrlLock(None)
                for url in slot.urls}
        slot_commits = {}
        for url in slot.urls:
            rr = github_ref(url, slot.ref)
            if rr:
                name = f"{rr[0]}/{rr[1]}@{rr[2]}"
                slot_commits[name] = commits[rr] or (prior.commits.get(name) if prior else None)
        entry = LockEntry(lib_id=slot.lib_id, version=slot.version, ref=slot.ref, urls=urls, commits=slot_commits)
        result.changes.extend(_diff(slot.slug, prior, entry))
        result.entries[slot.slug] = entry
    return result


def entry_from_fetch(slot: Slot, reports: Iterable[Mapping[str, object]]) -> LockEntry:
    """A slot's first lock entry, from the scrape's own fetch (no second download; commits unknown
    until `deadzone-build lock` resolves them)."""
    urls = {}
    for report in reports:
        sha = report.get("sha256")
        size = report.get("bytes")
        urls[str(report["url"])] = UrlLock(sha256=str(sha) if sha else None, size=int(size) if sha else None)  # type: ignore[arg-type]
    return LockEntry(lib_id=slot.lib_id, version=slot.version, ref=slot.ref, urls=urls)


def _current_entry(slot: Slot, old: Mapping[str, LockEntry]) -> LockEntry | None:
    entry = old.get(slot.slug)
    return entry if entry is not None and entry.matches(slot) else None


def _ask_url(url: str, prior: UrlLock | None, client: httpx.Client, settings: FetchSettings,
             result: LockRefresh) -> UrlLock | None:
    headers = {}
    if prior is not None and prior.sha256:
        if prior.etag:
            headers["If-None-Match"] = prior.etag
        if prior.last_modified:
            headers["If-Modified-Since"] = prior.last_modified
    fetched = fetch_one(url, client, settings, headers=headers or None)
    if fetched.http_status == 304 and prior is not None:
        result.note("304")
        return UrlLock(prior.sha256, prior.size, fetched.etag or prior.etag,
                       fetched.last_modified or prior.last_modified)
    if fetched.sha256 and fetched.http_status and 200 <= fetched.http_status < 300:
        result.note("200")  # binary or non-UTF-8 bodies are still content: hash what arrived
        return UrlLock(fetched.sha256, fetched.bytes, fetched.etag, fetched.last_modified)
    return _failed(url, fetched, prior, result)


def _failed(url: str, fetched: FetchResult, prior: UrlLock | None, result: LockRefresh) -> UrlLock | None:
    gone = fetched.http_status in (404, 410)
    result.note("failed", f"{url}: {fetched.reason or 'no body'}"
                + ("" if gone or prior is None else " (kept the locked value)"))
    return UrlLock(None) if gone else None  # None: keep the previous value, if any


def _ask_commit(repo_ref: tuple[str, str, str], github: GitHubFor, result: LockRefresh) -> str | None:
    owner, repo, ref = repo_ref
    try:
        sha = github(f"{owner}/{repo}").commit_sha(ref)
    except DeadzoneError as exc:
        sha, why = None, str(exc)
    else:
        why = "no such ref"
    result.note("commit", None if sha is not None else
                f"{owner}/{repo}@{ref}: could not resolve the ref to a commit ({why}); "
                "its locked commit, if any, is kept.")
    return sha


def _diff(slug: str, old: LockEntry | None, new: LockEntry) -> list[Change]:
    if old is None:
        return [Change(slug, "(new lock entry)", None, f"{len(new.urls)} URLs")]
    changes = [Change(slug, name, old.commits.get(name), sha) for name, sha in sorted(new.commits.items())
               if old.commits.get(name) != sha]
    changes += [Change(slug, url, old.urls[url].sha256 if url in old.urls else None, lock.sha256)
                for url, lock in sorted(new.urls.items())
                if url not in old.urls or old.urls[url].sha256 != lock.sha256]
    return changes


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    return value[:12] if _SHA.fullmatch(value) or re.fullmatch(r"[0-9a-f]{64}", value) else value
