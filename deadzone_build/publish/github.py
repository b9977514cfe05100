"""The GitHub REST client of deadzone-build: the only place that builds an HTTP client for GitHub's API.

Releases and assets (publish/release.py), actions caches (ci/actions_cache.py), and for the
source kinds: a directory's contents, a ref's commit SHA, a repository's tags. Requests go
through ghapi's `GhSyncTransport` (rate-limit bookkeeping, error statuses raised) over one
httpx2 client per process; pass `transport=` (e.g. `httpx2.MockTransport`) to put anything else
on the wire. Every call takes a full URL, so GhApi's ~1,200 generated operation functions (~0.3 s
to build from its OpenAPI description) are never needed.

ghapi retries only failed connections. GitHub also answers 5xx, 429 and secondary rate limits
(403/429 with `Retry-After`, or `x-ratelimit-remaining: 0`) that succeed when asked again
later, so every call here goes through `GitHubClient._retrying`: it waits as GitHub asks
(`retry_delay`, built on deadzone_build/retry.py, which the doc fetcher shares) and turns every
other failure into a `ReleaseError` that names the request and says what to do. Repository,
token and API URL come from deadzone_build/settings.py. The token travels only in the
Authorization header (`Bearer`, as GitHub documents); no message, log line or exception built
here contains it (and `_redact` scrubs it should GitHub ever echo it back).

    client = GitHubClient.from_settings("owner/name")      # token, API URL: arguments, else the environment
    release = client.release_by_tag("v1.0.0") or client.create_release("v1.0.0", draft=True)
"""

from __future__ import annotations

import io
import itertools
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Callable, Collection, Mapping, TypeVar
from urllib.parse import quote, urlencode

import httpx2
from ghapi.core import GhSyncTransport

from deadzone_build import __version__
from deadzone_build.errors import ReleaseError
from deadzone_build.retry import backoff, is_rate_limited, server_wait
from deadzone_build.settings import github_api_url as resolve_api_url
from deadzone_build.settings import github_repository
from deadzone_build.settings import github_token as resolve_token

__all__ = ["GitHubClient", "RetryPolicy", "retry_delay", "resolve_repo", "resolve_token", "resolve_api_url"]

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_URI_TEMPLATE = re.compile(r"\{[^{}]*\}$")
_CHUNK = 1 << 20
_PAGE = 100  # GitHub's largest page
TIMEOUT = 60.0  # seconds per connect/read/write, not per transfer: a large upload may take longer
API_VERSION = "2022-11-28"
_JSON = "application/vnd.github+json"
_SHA = "application/vnd.github.sha"  # GET commits/{ref} answers the bare SHA as text
_WRITE = "contents: write"

T = TypeVar("T")
Log = Callable[[str], None]


# ── configuration ───────────────────────────────────────────────────────────


def resolve_repo(explicit: str | None) -> str:
    """`explicit`, else $GITHUB_REPOSITORY (settings.github_repository); must read OWNER/NAME."""
    repo = github_repository(explicit)
    if not repo:
        raise ReleaseError("no GitHub repository given: pass --repo OWNER/NAME or set GITHUB_REPOSITORY.")
    if not _REPO.fullmatch(repo):
        raise ReleaseError(f"GitHub repository {repo!r} is not of the form OWNER/NAME; "
                           f"pass e.g. --repo laradji/deadzone.")
    return repo


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep asking. Waits come from GitHub's headers when it sends them."""

    attempts: int = 6
    backoff: float = 1.0  # first wait after a 5xx or a dropped connection; doubles each time
    max_backoff: float = 60.0
    secondary_wait: float = 60.0  # GitHub: "wait at least one minute" when it names no time
    max_wait: float = 900.0  # a longer rate-limit wait fails instead: CI jobs have time limits


def retry_delay(status: int, headers: Mapping[str, str], message: str, attempt: int,
                policy: RetryPolicy, now: float) -> float | None:
    """Seconds to wait before asking again, or None when asking again cannot help.

    Follows GitHub's guidance: `Retry-After` first; else, with no requests remaining, until
    `x-ratelimit-reset`; else at least a minute for a secondary limit, growing each time.
    """
    if not (status >= 500 or is_rate_limited(status, headers, message)):
        return None
    asked = server_wait(headers, now)
    if asked is not None:
        return asked
    if status >= 500:
        return backoff(attempt, policy.backoff, policy.max_backoff)
    return policy.secondary_wait * 2 ** (attempt - 1)


# ── failures ─────────────────────────────────────────────────────────────────


class _Failure:
    """One failed attempt, reduced to what a message or a retry decision needs."""

    def __init__(self, status: int | None, headers: Mapping[str, str], body: Any, reason: str) -> None:
        self.status, self.headers, self.body, self.reason = status, headers, body, reason

    @classmethod
    def of(cls, exc: BaseException) -> "_Failure | None":
        if isinstance(exc, httpx2.HTTPStatusError):
            response = exc.response
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            return cls(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body, "")
        if isinstance(exc, httpx2.TransportError):  # refused, reset, timed out
            return cls(None, {}, None, type(exc).__name__)
        return None

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            text = str(self.body.get("message") or "")
            codes = [e.get("code") for e in self.body.get("errors") or [] if isinstance(e, dict)]
            return f"{text} ({', '.join(map(str, codes))})" if any(codes) else text
        return str(self.body or "")[:200]

    @property
    def error_codes(self) -> list[str]:
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return [str(e.get("code")) for e in errors or [] if isinstance(e, dict)]

    def describe(self) -> str:
        if self.status is None:
            return f"connection failed: {self.reason}"
        return f"HTTP {self.status} {self.message}".rstrip()


# ── the client ───────────────────────────────────────────────────────────────


def _http_client(transport: httpx2.BaseTransport | None = None) -> httpx2.Client:
    """The one constructor of an HTTP client for GitHub's API (`transport=None`: the network)."""
    return httpx2.Client(transport=transport, timeout=TIMEOUT, follow_redirects=True,
                         headers={"User-Agent": f"deadzone-build/{__version__}"})


# One per process: its connection pool then serves every repository, host and token (the token
# is put in each request's headers, never in the client).
_shared_http_client = lru_cache(maxsize=1)(_http_client)


class GitHubClient:
    """The REST endpoints deadzone-build uses, for one repository."""

    def __init__(self, repo: str, *, token: str | None, api_url: str, log: Log = lambda s: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 policy: RetryPolicy = RetryPolicy(), transport: httpx2.BaseTransport | None = None) -> None:
        self.repo = resolve_repo(repo)
        self.api_url, self.log, self.sleep, self.clock, self.policy = api_url.rstrip("/"), log, sleep, clock, policy
        self._token = token
        self._http = _shared_http_client() if transport is None else _http_client(transport)
        # retries=0: one retry loop (ours, `_retrying`), sleeping through the injected clock
        self._wire = GhSyncTransport(client=self._http, retries=0, timeout=TIMEOUT,
                                     base_headers={"Accept": _JSON, "X-GitHub-Api-Version": API_VERSION})

    @classmethod
    def from_settings(cls, repo: str | None = None, *, token: str | None = None, api_url: str | None = None,
                      **options: Any) -> "GitHubClient":
        """Repository, token and API URL: the arguments, else the environment (deadzone_build/settings.py)."""
        return cls(resolve_repo(repo), token=resolve_token(token), api_url=resolve_api_url(api_url), **options)

    def __repr__(self) -> str:  # never show the token
        return f"GitHubClient({self.repo!r}, api_url={self.api_url!r}, token={'set' if self._token else 'unset'})"

    # releases ----------------------------------------------------------------

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        """The release for `tag`, drafts included, or None.

        GET /releases/tags/{tag} never returns drafts (their tag does not exist yet), so a
        draft is found by listing releases, as GitHub's docs advise.
        """
        found = self._call("GET", f"{self._repo_url}/releases/tags/{quote(tag, safe='/')}", missing=(404,))
        if found is not None:
            return found
        drafts = [r for r in self._pages(f"{self._repo_url}/releases") if r.get("tag_name") == tag and r.get("draft")]
        if len(drafts) > 1:
            ids = ", ".join(str(r["id"]) for r in drafts)
            raise ReleaseError(f"{self.repo} has {len(drafts)} draft releases for tag {tag} (ids {ids}); "
                               f"delete the extra drafts on GitHub and run again.")
        return drafts[0] if drafts else None

    def latest_release(self) -> dict[str, Any] | None:
        """The latest published (non-draft, non-prerelease) release, or None."""
        return self._call("GET", f"{self._repo_url}/releases/latest", missing=(404,))

    def create_release(self, tag: str, *, draft: bool) -> dict[str, Any]:
        """Create the release for `tag`. A retry first looks for it: the failed POST may have landed."""
        return self._call("POST", f"{self._repo_url}/releases", body={"tag_name": tag, "name": tag, "draft": draft},
                          before_retry=lambda: self.release_by_tag(tag))

    def publish_release(self, release_id: int) -> dict[str, Any]:
        """Turn a draft into a published release (GitHub creates the tag if it is missing)."""
        return self._call("PATCH", f"{self._repo_url}/releases/{release_id}", body={"draft": False})

    # assets ------------------------------------------------------------------

    def list_assets(self, release_id: int) -> list[dict[str, Any]]:
        """Every asset of the release, in every upload state."""
        return self._pages(f"{self._repo_url}/releases/{release_id}/assets")

    def upload_asset(self, release: Mapping[str, Any], name: str, source: Path | bytes,
                     content_type: str = "application/octet-stream") -> dict[str, Any]:
        """Upload `source` as asset `name` through the release's own `upload_url`.

        A file is streamed, not read into memory. Before a retry, whatever the failed attempt
        left under `name` (GitHub may keep a half-uploaded asset) is deleted, else the retry
        would meet a 422.
        """
        url = _URI_TEMPLATE.sub("", str(release["upload_url"]))
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        headers = {**self._auth, "Content-Type": content_type, "Content-Length": str(size)}

        def post() -> Any:
            # ghapi's own upload helper is async and reads the file into memory: same endpoint,
            # through the same transport, streamed.
            with (source.open("rb") if isinstance(source, Path) else io.BytesIO(source)) as body:
                return _json(self._wire.request("POST", url, headers=headers, params={"name": name},
                                                content=body, raw=True), url)

        def remove_leftover() -> None:
            for asset in self.list_assets(int(release["id"])):
                if asset.get("name") == name:
                    self.delete_asset(int(asset["id"]))

        return self._retrying("POST", f"{url}?name={name}", post, before_retry=remove_leftover)

    def delete_asset(self, asset_id: int) -> None:
        """Delete an asset; one already gone (e.g. by a retried DELETE) counts as deleted."""
        self._call("DELETE", f"{self._repo_url}/releases/assets/{asset_id}", missing=(404,))

    def rename_asset(self, asset_id: int, name: str) -> dict[str, Any]:
        """Rename an asset (PATCH name); GitHub refuses (422) when another asset holds `name`."""
        return self._call("PATCH", f"{self._repo_url}/releases/assets/{asset_id}", body={"name": name})

    def download_asset(self, asset: Mapping[str, Any], sink: BinaryIO) -> None:
        """Stream an asset's bytes into `sink` (rewound and truncated before each attempt).

        GET on the asset's API URL with Accept: application/octet-stream answers the bytes or a
        302 to a download URL; httpx drops the Authorization header on a redirect to another host.
        """
        url = str(asset["url"])
        headers = {**self._wire.base_headers, **self._auth, "Accept": "application/octet-stream"}

        def get() -> None:
            sink.seek(0)
            sink.truncate()
            with self._http.stream("GET", url, headers=headers) as response:
                if response.is_error:
                    response.read()
                    response.raise_for_status()
                for chunk in response.iter_bytes(_CHUNK):
                    sink.write(chunk)

        self._retrying("GET", url, get)

    def read_asset(self, asset: Mapping[str, Any], limit: int = 1 << 20) -> bytes:
        """A small asset's bytes (checksums, manifests); refuses anything above `limit`."""
        if int(asset.get("size") or 0) > limit:
            raise ReleaseError(f"asset {asset.get('name')} of {self.repo} is {asset.get('size')} bytes, "
                               f"more than the {limit} expected; check the release's assets.")
        buffer = io.BytesIO()
        self.download_asset(asset, buffer)
        return buffer.getvalue()

    # actions caches ----------------------------------------------------------

    def actions_caches(self, key_prefix: str = "") -> list[dict[str, Any]]:
        """Every `actions/cache` entry whose key starts with `key_prefix`, as GitHub lists them
        (newest access first). Needs `actions: read` (public repositories: anyone)."""
        return self._pages(f"{self._repo_url}/actions/caches", query={"key": key_prefix} if key_prefix else None,
                           items_key="actions_caches", permission="actions: read")

    # repository contents (for source kinds) ----------------------------------

    def list_directory(self, path: str, *, ref: str | None = None) -> list[dict[str, Any]]:
        """The entries ({"type": "file"|"dir"|..., "name", "path", "sha", "size", "download_url"}) of
        directory `path` at `ref` (default: the default branch). GitHub lists at most 1,000 entries
        per directory this way."""
        url = f"{self._repo_url}/contents/{quote(path.strip('/'), safe='/')}"
        listing = self._call("GET", url, query={"ref": ref} if ref else None, permission="contents: read")
        if not isinstance(listing, list):
            raise self._error(f"GET {url} at {ref or 'the default branch'} is not a directory of {self.repo} "
                              f"(GitHub answered a {'file' if isinstance(listing, dict) else 'non-list'}); "
                              f"check the path in the registry.")
        return listing

    def commit_sha(self, ref: str) -> str | None:
        """The commit SHA that `ref` (branch, tag or SHA) points at, or None when there is no such ref."""
        url = f"{self._repo_url}/commits/{quote(ref, safe='/')}"
        sha = self._call("GET", url, accept=_SHA, missing=(404, 422), permission="contents: read")
        if sha is not None and not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", sha.strip()):
            raise self._error(f"GET {url} answered {sha[:80]!r}, not a commit SHA; check GITHUB_API_URL "
                              f"points at the GitHub REST API.")
        return None if sha is None else sha.strip()

    def commit_date(self, sha: str) -> str | None:
        """The committer date (ISO 8601) of commit `sha`, or None when GitHub does not know it."""
        commit = self._call("GET", f"{self._repo_url}/commits/{quote(sha, safe='')}", missing=(404, 422),
                            permission="contents: read")
        try:
            return str(commit["commit"]["committer"]["date"])
        except (TypeError, KeyError):
            return None

    def tags(self) -> list[dict[str, Any]]:
        """Every tag ({"name", "commit": {"sha", "url"}, ...}), newest first as GitHub orders them."""
        return self._pages(f"{self._repo_url}/tags", permission="contents: read")

    # plumbing ----------------------------------------------------------------

    @property
    def _repo_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _call(self, method: str, url: str, *, query: dict[str, Any] | None = None, body: Any = None,
              accept: str = _JSON, missing: Collection[int] = (), permission: str = _WRITE,
              before_retry: Callable[[], Any] | None = None) -> Any:
        """One call, retried: the decoded JSON (the text for a non-JSON `accept`), None on a `missing` status."""
        shown = f"{url}?{urlencode(query)}" if query else url
        headers = {**self._auth, "Accept": accept}

        def send() -> Any:
            response = self._wire.request(method, url, headers=headers, params=query, json=body, raw=True)
            return response.text if accept == _SHA else _json(response, shown)

        return self._retrying(method, shown, send, missing=missing, permission=permission,
                              before_retry=before_retry)

    def _pages(self, url: str, *, query: dict[str, Any] | None = None, items_key: str | None = None,
               permission: str = _WRITE) -> list[dict[str, Any]]:
        """Every item of a paged list: a JSON list, or the list under `items_key` of an object that
        also carries `total_count`. Stops at a short page (or at `total_count`), never asking for
        an empty one; ghapi's own pager walks to a fixed page cap instead."""
        items: list[dict[str, Any]] = []
        for page in itertools.count(1):
            answer = self._call("GET", url, query={**(query or {}), "per_page": _PAGE, "page": page},
                                permission=permission)
            batch = answer.get(items_key) if items_key and isinstance(answer, dict) else answer
            if not isinstance(batch, list):
                what = f"`{items_key}` list" if items_key else "JSON list"
                raise self._error(f"GET {url} (page {page}): no {what} in the answer; check GITHUB_API_URL "
                                  f"points at the GitHub REST API.")
            items.extend(batch)
            total = answer.get("total_count") if items_key else None
            if len(batch) < _PAGE or (isinstance(total, int) and page * _PAGE >= total):
                return items
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrying(self, method: str, url: str, call: Callable[[], T], *, missing: Collection[int] = (),
                  permission: str = _WRITE, before_retry: Callable[[], T | None] | None = None) -> T:
        """`call()`, retried while GitHub says later; None on a `missing` status."""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - classified right below, re-raised when unknown
                failure = _Failure.of(exc)
                if failure is None:
                    raise
            if failure.status in missing:
                return None  # type: ignore[return-value]
            delay = self._delay(failure, attempt, method, url, permission)
            if attempt == self.policy.attempts:
                break
            self.log(_redact(f"GitHub: {method} {url}: {failure.describe()}; retrying in {delay:g}s "
                             f"(attempt {attempt + 1} of {self.policy.attempts})", self._token))
            self.sleep(delay)
            if before_retry is not None and (landed := before_retry()) is not None:
                return landed
        raise self._error(f"GitHub kept failing {method} {url} ({failure.describe()}) after "
                          f"{self.policy.attempts} attempts; try again later (see https://www.githubstatus.com).")

    def _delay(self, failure: _Failure, attempt: int, method: str, url: str, permission: str) -> float:
        if failure.status is None:
            return backoff(attempt, self.policy.backoff, self.policy.max_backoff)
        delay = retry_delay(failure.status, failure.headers, failure.message, attempt, self.policy, self.clock())
        if delay is None:
            raise self._final_error(failure, method, url, permission)
        if delay > self.policy.max_wait:
            raise self._error(f"GitHub's rate limit blocks {method} {url} for another {delay:.0f}s; "
                              f"run again after that (or with a token that has quota left).")
        return delay

    def _final_error(self, failure: _Failure, method: str, url: str, permission: str) -> ReleaseError:
        what = f"{method} {url}: {failure.describe()}"
        if failure.status == 401:
            fix = ("the token is invalid or expired: set GITHUB_TOKEN (or GH_TOKEN) to a valid token"
                   if self._token else "set GITHUB_TOKEN (or GH_TOKEN) to a token")
            return self._error(f"GitHub rejected the credentials ({what}); {fix} with {permission} on {self.repo}.")
        if failure.status == 403:
            return self._error(f"GitHub refused {what}; the token lacks permission on {self.repo}: give it "
                               f"{permission} (in GitHub Actions: `permissions: {permission}`).")
        if failure.status == 404:
            return self._error(f"GitHub found nothing at {what}; check the repository {self.repo} "
                               f"(--repo or GITHUB_REPOSITORY) and that the token can see it.")
        if failure.status == 422 and "already_exists" in failure.error_codes:
            return self._error(f"GitHub refused {what}: the name is taken, probably by another release run "
                               f"in progress; run again once it has finished.")
        return self._error(f"GitHub rejected {what}; fix the request (see the message) and run again.")

    def _error(self, message: str) -> ReleaseError:
        return ReleaseError(_redact(message, self._token))


def _json(response: httpx2.Response, shown: str) -> Any:
    """A response's JSON as plain dicts and lists; None for an empty body (204)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ReleaseError(f"{shown} answered HTTP {response.status_code} with a body that is not JSON; "
                           f"check GITHUB_API_URL points at the GitHub REST API.") from None


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
