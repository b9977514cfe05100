"""A small GitHub Releases client over ghapi (sync mode), with the retries ghapi leaves out.

ghapi retries only failed connections. GitHub also answers 5xx, 429 and secondary rate limits
(403/429 with `Retry-After`, or `x-ratelimit-remaining: 0`) that succeed when asked again
later, so every call here goes through `GitHubClient._retrying`: it waits as GitHub asks
(`retry_delay`) and turns every other failure into a `ReleaseError` that names the request and
says what to do. The token lives only in the Authorization header; no message, log line or
exception built here contains it (and `_redact` scrubs it should GitHub ever echo it back).

    client = GitHubClient("owner/name", token=..., api_url="https://api.github.com")
    release = client.release_by_tag("v1.0.0") or client.create_release("v1.0.0", draft=True)
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, TypeVar
from urllib.parse import quote, urlencode

import httpx2
from ghapi.core import GhApi

from deadzone_build.errors import ReleaseError

DEFAULT_API_URL = "https://api.github.com"
REPO_ENV = "GITHUB_REPOSITORY"
API_URL_ENV = "GITHUB_API_URL"
TOKEN_ENVS = ("GITHUB_TOKEN", "GH_TOKEN")

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_URI_TEMPLATE = re.compile(r"\{[^{}]*\}$")
_CHUNK = 1 << 20
_PAGE = 100
TIMEOUT = 60.0  # seconds per connect/read/write, not per transfer: a large upload may take longer
API_VERSION = "2022-11-28"

T = TypeVar("T")
Log = Callable[[str], None]


# ── configuration ───────────────────────────────────────────────────────────


def resolve_repo(explicit: str | None) -> str:
    """`explicit`, else $GITHUB_REPOSITORY; must read OWNER/NAME."""
    repo = explicit or os.environ.get(REPO_ENV) or ""
    if not repo:
        raise ReleaseError("no GitHub repository given: pass --repo OWNER/NAME or set GITHUB_REPOSITORY.")
    if not _REPO.fullmatch(repo):
        raise ReleaseError(f"GitHub repository {repo!r} is not of the form OWNER/NAME; "
                           f"pass e.g. --repo laradji/deadzone.")
    return repo


def resolve_token(explicit: str | None) -> str | None:
    """`explicit`, else $GITHUB_TOKEN, else $GH_TOKEN, else None (anonymous: public reads only)."""
    if explicit:
        return explicit
    for name in TOKEN_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def resolve_api_url(explicit: str | None) -> str:
    """`explicit`, else $GITHUB_API_URL, else https://api.github.com (no trailing slash)."""
    return (explicit or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep asking. Waits come from GitHub's headers when it sends them."""

    attempts: int = 6
    backoff: float = 1.0  # first wait after a 5xx or a dropped connection; doubles each time
    max_backoff: float = 60.0
    secondary_wait: float = 60.0  # GitHub: "wait at least one minute" when it names no time
    max_wait: float = 900.0  # a longer rate-limit wait fails instead: CI jobs have time limits


# ── deciding whether to retry ───────────────────────────────────────────────


def _header_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds: GitHub sends an integer; RFC 9110 also allows an HTTP date."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None


def is_rate_limited(status: int, headers: Mapping[str, str], message: str) -> bool:
    """GitHub's primary and secondary rate limits answer 429, or 403 with these markers."""
    if status == 429:
        return True
    return status == 403 and ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
                              or "rate limit" in message.lower())


def retry_delay(status: int, headers: Mapping[str, str], message: str, attempt: int,
                policy: RetryPolicy, now: float) -> float | None:
    """Seconds to wait before asking again, or None when asking again cannot help.

    Follows GitHub's guidance: `Retry-After` first; else, with no requests remaining, until
    `x-ratelimit-reset`; else at least a minute for a secondary limit, growing each time.
    """
    retry_after = _header_seconds(headers.get("retry-after"), now)
    if is_rate_limited(status, headers, message):
        if retry_after is not None:
            return retry_after
        reset = headers.get("x-ratelimit-reset")
        if headers.get("x-ratelimit-remaining") == "0" and reset and reset.isdigit():
            return max(int(reset) - now, 0.0) + 1.0  # +1: the reset second itself may still count
        return policy.secondary_wait * 2 ** (attempt - 1)
    if status >= 500:
        if retry_after is not None:
            return retry_after
        return min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
    return None


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


@lru_cache(maxsize=1)
def shared_api() -> GhApi:
    """One GhApi per process. Building one turns GitHub's whole OpenAPI description (~1,200
    operations) into functions, ~0.3 s; calling full URLs, with the token in each request's
    headers, lets one instance serve every repository, host and token. Its transport keeps one
    httpx client (and its connections) instead of opening a new one per request."""
    api = GhApi(authenticate=False, sync=True, timeout=TIMEOUT)
    api.transport.retries = 0  # one retry loop (ours), sleeping through the injected clock
    api.transport.client = httpx2.Client(timeout=TIMEOUT, follow_redirects=True)
    return api


class GitHubClient:
    """The Releases endpoints deadzone-build uses, for one repository."""

    def __init__(self, repo: str, *, token: str | None, api_url: str, log: Log = lambda s: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        self.repo = resolve_repo(repo)
        self.api_url, self.log, self.sleep, self.clock, self.policy = api_url.rstrip("/"), log, sleep, clock, policy
        self._token = token
        self.api = shared_api()

    def __repr__(self) -> str:  # never show the token
        return f"GitHubClient({self.repo!r}, api_url={self.api_url!r}, token={'set' if self._token else 'unset'})"

    # releases ----------------------------------------------------------------

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        """The release for `tag`, drafts included, or None.

        GET /releases/tags/{tag} never returns drafts (their tag does not exist yet), so a
        draft is found by listing releases, as GitHub's docs advise.
        """
        found = self._call("GET", f"{self._repo_url}/releases/tags/{quote(tag, safe='/')}", missing_ok=True)
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
        return self._call("GET", f"{self._repo_url}/releases/latest", missing_ok=True)

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
                return self.api.transport.request("POST", url, headers=headers, params={"name": name},
                                                  content=body)

        def remove_leftover() -> None:
            for asset in self.list_assets(int(release["id"])):
                if asset.get("name") == name:
                    self.delete_asset(int(asset["id"]))

        return _plain(self._retrying("POST", f"{url}?name={name}", post, before_retry=remove_leftover))

    def delete_asset(self, asset_id: int) -> None:
        """Delete an asset; one already gone (e.g. by a retried DELETE) counts as deleted."""
        self._call("DELETE", f"{self._repo_url}/releases/assets/{asset_id}", missing_ok=True)

    def rename_asset(self, asset_id: int, name: str) -> dict[str, Any]:
        """Rename an asset (PATCH name); GitHub refuses (422) when another asset holds `name`."""
        return self._call("PATCH", f"{self._repo_url}/releases/assets/{asset_id}", body={"name": name})

    def download_asset(self, asset: Mapping[str, Any], sink: BinaryIO) -> None:
        """Stream an asset's bytes into `sink` (rewound and truncated before each attempt).

        GET on the asset's API URL with Accept: application/octet-stream answers the bytes or a
        302 to a download URL; httpx drops the Authorization header on a redirect to another host.
        """
        url = str(asset["url"])
        headers = {**self.api.headers, **self._auth, "Accept": "application/octet-stream"}

        def get() -> None:
            sink.seek(0)
            sink.truncate()
            with self.api.transport.client.stream("GET", url, headers=headers) as response:
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

    # plumbing ----------------------------------------------------------------

    @property
    def _repo_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self._token}"} if self._token else {}

    def _call(self, method: str, url: str, *, query: dict[str, Any] | None = None, body: Any = None,
              missing_ok: bool = False, before_retry: Callable[[], Any] | None = None) -> Any:
        """One JSON call through GhApi (a full URL, so `gh_host` is not used), retried."""
        shown = f"{url}?{urlencode(query)}" if query else url
        headers = {**self._auth, "X-GitHub-Api-Version": API_VERSION}
        result = self._retrying(method, shown, lambda: self.api(url, method, headers=headers, query=query, data=body),
                                missing_ok=missing_ok, before_retry=before_retry)
        return None if result is None else _plain(result)

    def _pages(self, url: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in itertools.count(1):
            batch = self._call("GET", url, query={"per_page": _PAGE, "page": page}) or []
            items.extend(batch)
            if len(batch) < _PAGE:
                return items
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrying(self, method: str, url: str, call: Callable[[], T], *, missing_ok: bool = False,
                  before_retry: Callable[[], T | None] | None = None) -> T:
        """`call()`, retried while GitHub says later; None on 404 when `missing_ok`."""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - classified right below, re-raised when unknown
                failure = _Failure.of(exc)
                if failure is None:
                    raise
            if failure.status == 404 and missing_ok:
                return None  # type: ignore[return-value]
            delay = self._delay(failure, attempt, method, url)
            if attempt == self.policy.attempts:
                break
            self.log(_redact(f"GitHub: {method} {url}: {failure.describe()}; retrying in {delay:g}s "
                             f"(attempt {attempt + 1} of {self.policy.attempts})", self._token))
            self.sleep(delay)
            if before_retry is not None and (landed := before_retry()) is not None:
                return landed
        raise self._error(f"GitHub kept failing {method} {url} ({failure.describe()}) after "
                          f"{self.policy.attempts} attempts; try again later (see https://www.githubstatus.com).")

    def _delay(self, failure: _Failure, attempt: int, method: str, url: str) -> float:
        if failure.status is None:
            return min(self.policy.backoff * 2 ** (attempt - 1), self.policy.max_backoff)
        delay = retry_delay(failure.status, failure.headers, failure.message, attempt, self.policy, self.clock())
        if delay is None:
            raise self._final_error(failure, method, url)
        if delay > self.policy.max_wait:
            raise self._error(f"GitHub's rate limit blocks {method} {url} for another {delay:.0f}s; "
                              f"run again after that (or with a token that has quota left).")
        return delay

    def _final_error(self, failure: _Failure, method: str, url: str) -> ReleaseError:
        what = f"{method} {url}: {failure.describe()}"
        if failure.status == 401:
            fix = ("the token is invalid or expired: set GITHUB_TOKEN (or GH_TOKEN) to a valid token"
                   if self._token else "set GITHUB_TOKEN (or GH_TOKEN) to a token")
            return self._error(f"GitHub rejected the credentials ({what}); {fix} with contents: write on {self.repo}.")
        if failure.status == 403:
            return self._error(f"GitHub refused {what}; the token lacks permission on {self.repo}: give it "
                               f"contents: write (in GitHub Actions: `permissions: contents: write`).")
        if failure.status == 404:
            return self._error(f"GitHub found nothing at {what}; check the repository {self.repo} "
                               f"(--repo or GITHUB_REPOSITORY) and that the token can see it.")
        if failure.status == 422 and "already_exists" in failure.error_codes:
            return self._error(f"GitHub refused {what}: the name is taken, probably by another release run "
                               f"in progress; run again once it has finished.")
        return self._error(f"GitHub rejected {what}; fix the request (see the message) and run again.")

    def _error(self, message: str) -> ReleaseError:
        return ReleaseError(_redact(message, self._token))


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _plain(value: Any) -> Any:
    """ghapi's AttrDict (a dict) and L (an iterable) into plain dicts and lists."""
    return json.loads(json.dumps(value, default=list))
