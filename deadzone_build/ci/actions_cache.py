"""A repository's `actions/cache` entries, read through the one GitHub client (publish/github.py).

    GET {api}/repos/{owner}/{repo}/actions/caches?key=<prefix>&per_page=100&page=N

`key` is a prefix filter. The client walks pages until a short page or `total_count` entries,
retries as GitHub asks and never shows the token; here the entries become `CacheEntry` records
(deduplicated by id: an eviction between two pages can shift an entry onto the next one) and a
failure becomes a PlanError. The workflow's job needs `permissions: actions: read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deadzone_build.errors import PlanError, ReleaseError
from deadzone_build.publish.github import GitHubClient

__all__ = ["CacheEntry", "list_caches"]


@dataclass(frozen=True)
class CacheEntry:
    """One `actions/cache` entry as the API reports it."""

    id: int
    key: str
    ref: str
    size_in_bytes: int
    last_accessed_at: str


def list_caches(repo: str | None, *, key_prefix: str = "deadzone-", token: str | None = None,
                api_url: str | None = None, **client_options: Any) -> list[CacheEntry]:
    """Every cache entry of `repo` whose key starts with `key_prefix`, newest access first.

    `repo`, `token`, `api_url`: the arguments, else $GITHUB_REPOSITORY, $GITHUB_TOKEN/$GH_TOKEN,
    $GITHUB_API_URL. `client_options` go to GitHubClient (sleep, policy, transport, log)."""
    try:
        client = GitHubClient.from_settings(repo, token=token, api_url=api_url, **client_options)
        raw = client.actions_caches(key_prefix)
    except ReleaseError as exc:  # the client's failures, in the plan's terms
        raise PlanError(str(exc)) from None
    entries: dict[int, CacheEntry] = {}
    for item in raw:
        entry = _entry(item, client)
        entries[entry.id] = entry
    return list(entries.values())


def _entry(item: Any, client: GitHubClient) -> CacheEntry:
    try:
        return CacheEntry(id=int(item["id"]), key=str(item["key"]), ref=str(item.get("ref", "")),
                          size_in_bytes=int(item.get("size_in_bytes", 0)),
                          last_accessed_at=str(item.get("last_accessed_at", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanError(f"GET {client.api_url}/repos/{client.repo}/actions/caches: a cache entry lacks `{exc}` "
                        f"or is malformed ({str(item)[:120]}). Check GITHUB_API_URL points at the GitHub "
                        "REST API.") from None

