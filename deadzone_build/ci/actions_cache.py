"""Listing a repository's `actions/cache` entries through the REST API.

    GET {api}/repos/{owner}/{repo}/actions/caches?key=<prefix>&per_page=100&page=N

`key` is a prefix filter. Pages are walked by hand until a short page or `total_count` entries:
ghapi's auto-pager walks to its own page cap instead, not to the listing's end. The token comes from
GITHUB_TOKEN or GH_TOKEN and is only ever put in the Authorization header: no message, log or
exception carries it. The workflow's job needs `permissions: actions: read`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable

import httpx

from deadzone_build.errors import PlanError

DEFAULT_API_URL = "https://api.github.com"
PER_PAGE_MAX = 100
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT = 60.0  # seconds; a longer Retry-After fails instead of stalling the plan job
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class CacheEntry:
    """One `actions/cache` entry as the API reports it."""

    id: int
    key: str
    ref: str
    size_in_bytes: int
    last_accessed_at: str


def github_token() -> str | None:
    """GITHUB_TOKEN, else GH_TOKEN, else None (anonymous)."""
    return os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or None


def api_base(explicit: str | None = None) -> str:
    """`explicit`, else $GITHUB_API_URL, else https://api.github.com (no trailing slash)."""
    return (explicit or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")


def list_caches(repo: str, *, key_prefix: str = "deadzone-", token: str | None = None,
                api_url: str | None = None, client: httpx.Client | None = None,
                per_page: int = PER_PAGE_MAX, retries: int = 3,
                sleep: Callable[[float], None] = time.sleep) -> list[CacheEntry]:
    """Every cache entry of `repo` whose key starts with `key_prefix`, newest access first."""
    if not _REPO.fullmatch(repo or ""):
        raise PlanError(f"repository `{repo}` is not OWNER/NAME. Pass --repo OWNER/NAME or set "
                        "GITHUB_REPOSITORY.")
    if not 1 <= per_page <= PER_PAGE_MAX:
        raise PlanError(f"per_page {per_page} is outside 1..{PER_PAGE_MAX}. Pick a value in that range.")
    url = f"{api_base(api_url)}/repos/{repo}/actions/caches"
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    token = token if token is not None else github_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    try:
        return _walk_pages(http, url, headers, key_prefix, per_page, retries, sleep)
    finally:
        if own:
            http.close()


def _walk_pages(http: httpx.Client, url: str, headers: dict[str, str], prefix: str, per_page: int,
                retries: int, sleep: Callable[[float], None]) -> list[CacheEntry]:
    entries: dict[int, CacheEntry] = {}  # by id: an eviction between pages can shift an entry
    page = 1
    while True:
        params = {"key": prefix, "per_page": str(per_page), "page": str(page)}
        body = _get_json(http, url, headers, params, retries, sleep)
        items, total = _parse_page(body, url, page)
        for entry in items:
            entries[entry.id] = entry
        if len(items) < per_page or page * per_page >= total:
            return list(entries.values())
        page += 1


def _get_json(http: httpx.Client, url: str, headers: dict[str, str], params: dict[str, str],
              retries: int, sleep: Callable[[float], None]) -> object:
    where = f"GET {url} (page {params['page']})"
    for attempt in range(retries + 1):
        try:
            response = http.get(url, headers=headers, params=params)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise PlanError(f"{where}: {type(exc).__name__} after {retries + 1} attempts. "
                                "Check the network or GITHUB_API_URL and rerun.") from None
            sleep(2.0 ** attempt)
            continue
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise PlanError(f"{where}: the answer is not JSON. Check GITHUB_API_URL.") from None
        wait = _retry_wait(response, attempt)
        if wait is None or attempt == retries:
            raise _http_error(where, response)
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_wait(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying, or None when the status is not worth a retry."""
    limited = response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
    if response.status_code not in RETRY_STATUSES and not limited:
        return None
    try:
        wait = float(response.headers.get("retry-after", 2.0 ** attempt))
    except ValueError:
        wait = 2.0 ** attempt
    return wait if wait <= MAX_RETRY_WAIT else None


def _http_error(where: str, response: httpx.Response) -> PlanError:
    status = response.status_code
    if status in (401, 403, 404):
        hint = ("the token is missing, expired or lacks `actions: read` (or the repository does "
                "not exist). Set GITHUB_TOKEN/GH_TOKEN and give the job `permissions: actions: read`")
    else:
        hint = "GitHub did not answer properly. Rerun later, or plan without --github"
    return PlanError(f"{where}: HTTP {status}: {hint}.")


def _parse_page(body: object, url: str, page: int) -> tuple[list[CacheEntry], int]:
    if not isinstance(body, dict) or not isinstance(body.get("actions_caches"), list):
        raise PlanError(f"GET {url} (page {page}): no `actions_caches` list in the answer. "
                        "Check GITHUB_API_URL points at the GitHub REST API.")
    try:
        items = [CacheEntry(id=int(c["id"]), key=str(c["key"]), ref=str(c.get("ref", "")),
                            size_in_bytes=int(c.get("size_in_bytes", 0)),
                            last_accessed_at=str(c.get("last_accessed_at", "")))
                 for c in body["actions_caches"]]
        total = int(body.get("total_count", len(items)))
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"GET {url} (page {page}): a cache entry lacks `{exc}` or is malformed. "
                        "Check GITHUB_API_URL points at the GitHub REST API.") from None
    return items, total
