"""`deadzone-build outdated`: registry entries pinned to a tag that upstream has moved past.

For every github-* library whose ref reads as a version (`v1.9.1`, `1.9.1`, `v2.0.0-rc.1`), the
upstream's tags are listed (`GET /repos/{owner}/{repo}/tags`, paged) and compared as versions
(PEP 440 ordering through `packaging`, which orders semver release numbers the same way).
Tags that do not read as a version (`nightly`, `go1.21`, `api/v1.2.0` sub-module tags) are ignored;
pre-releases count only with `include_pre`. Dates come from each tag's commit
(`GET /repos/{owner}/{repo}/commits/{sha}`), one request per library for the latest tag and one
for the pinned tag.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable
from urllib.parse import quote

import httpx
from packaging.version import InvalidVersion, Version

from deadzone_build.errors import FetchError
from deadzone_build.freshness.refresh import github_ref
from deadzone_build.registry.load import Slot
from deadzone_build.sources.fetch import FetchSettings, fetch_one

_TAG = re.compile(r"v?(\d+(?:\.\d+)*(?:[-.]?(?:a|b|rc|alpha|beta|pre|dev)[.-]?\d*)?)", re.IGNORECASE)
MAX_TAG_PAGES = 10  # 1,000 tags: enough to find the newest of any real project


@dataclass(frozen=True)
class Outdated:
    lib_id: str
    repo: str
    pinned: str
    latest: str
    pinned_date: str | None
    latest_date: str | None

    @property
    def behind_days(self) -> int | None:
        if not (self.pinned_date and self.latest_date):
            return None
        return (_date(self.latest_date) - _date(self.pinned_date)).days

    def record(self) -> dict[str, Any]:
        return {"lib_id": self.lib_id, "repo": self.repo, "pinned": self.pinned, "latest": self.latest,
                "pinned_date": self.pinned_date, "latest_date": self.latest_date, "behind_days": self.behind_days}


def tag_version(tag: str) -> Version | None:
    """The version a tag names, or None when it does not read as one (ignored by `outdated`)."""
    match = _TAG.fullmatch(tag.strip())
    if not match:
        return None
    try:
        return Version(match.group(1))
    except InvalidVersion:
        return None


def newest_tag(tags: Iterable[str], include_pre: bool = False) -> str | None:
    versions = [(v, t) for t in tags if (v := tag_version(t)) is not None and (include_pre or not v.is_prerelease)]
    return max(versions)[1] if versions else None


def find_outdated(slots: Iterable[Slot], *, client: httpx.Client, settings: FetchSettings, api_url: str,
                  include_pre: bool = False) -> list[Outdated]:
    """One row per library whose newest pinned tag is older than upstream's newest tag, in registry order."""
    pinned: dict[str, tuple[str, str, Version]] = {}  # lib_id → (repo, tag, version), newest pinned version
    for slot in slots:
        if not slot.kind.startswith("github-") or (version := tag_version(slot.ref)) is None:
            continue
        repo = next((f"{rr[0]}/{rr[1]}" for u in slot.urls if (rr := github_ref(u, slot.ref))), None)
        if repo and (slot.lib_id not in pinned or version > pinned[slot.lib_id][2]):
            pinned[slot.lib_id] = (repo, slot.ref, version)
    rows = []
    for lib_id, (repo, tag, version) in pinned.items():
        tags = _tags(repo, api_url, client, settings)
        latest = newest_tag(tags, include_pre)
        if latest is None or tag_version(latest) <= version:  # type: ignore[operator]
            continue
        rows.append(Outdated(lib_id, repo, tag, latest, _tag_date(repo, tags[tag], api_url, client, settings)
                             if tag in tags else None, _tag_date(repo, tags[latest], api_url, client, settings)))
    return rows


def _tags(repo: str, api_url: str, client: httpx.Client, settings: FetchSettings) -> dict[str, str]:
    """tag name → commit sha, every page."""
    tags: dict[str, str] = {}
    for page in range(1, MAX_TAG_PAGES + 1):
        items = _json(f"{api_url}/repos/{repo}/tags?per_page=100&page={page}", client, settings)
        if not isinstance(items, list):
            raise FetchError(f"{api_url}/repos/{repo}/tags: expected a JSON list of tags; check GITHUB_API_URL.")
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                tags[item["name"]] = str((item.get("commit") or {}).get("sha", ""))
        if len(items) < 100:
            break
    return tags


def _tag_date(repo: str, sha: str, api_url: str, client: httpx.Client, settings: FetchSettings) -> str | None:
    if not sha:
        return None
    commit = _json(f"{api_url}/repos/{repo}/commits/{quote(sha)}", client, settings)
    try:
        return str(commit["commit"]["committer"]["date"])
    except (TypeError, KeyError):
        return None


def _json(url: str, client: httpx.Client, settings: FetchSettings) -> Any:
    fetched = fetch_one(url, client, settings, headers={"Accept": "application/vnd.github+json"})
    if not fetched.ok or fetched.text is None:
        raise FetchError(f"{url}: {fetched.reason}. Set GITHUB_TOKEN if you hit the rate limit "
                         "(60 requests/hour anonymous).")
    try:
        return json.loads(fetched.text)
    except ValueError:
        raise FetchError(f"{url}: the answer is not JSON; check GITHUB_API_URL.") from None


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
