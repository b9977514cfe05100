"""`deadzone-build outdated`: registry entries pinned to a tag that upstream has moved past.

For every github-* library whose ref reads as a version (`v1.9.1`, `1.9.1`, `v2.0.0-rc.1`), the
upstream's tags are listed through the project's GitHub client (`GET /repos/{owner}/{repo}/tags`,
paged) and compared as versions
(PEP 440 ordering through `packaging`, which orders semver release numbers the same way).
Tags that do not read as a version (`nightly`, `go1.21`, `api/v1.2.0` sub-module tags) are ignored;
pre-releases count only with `include_pre`. Dates come from each tag's commit
(`GET /repos/{owner}/{repo}/commits/{sha}`), one request per library for the latest tag and one
for the pinned tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from packaging.version import InvalidVersion, Version

from deadzone_build.freshness.refresh import GitHubFor, github_ref
from deadzone_build.registry.load import Slot

_TAG = re.compile(r"v?(\d+(?:\.\d+)*(?:[-.]?(?:a|b|rc|alpha|beta|pre|dev)[.-]?\d*)?)", re.IGNORECASE)


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


def find_outdated(slots: Iterable[Slot], *, github: GitHubFor, include_pre: bool = False) -> list[Outdated]:
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
        client = github(repo)
        tags = {str(t.get("name")): str((t.get("commit") or {}).get("sha", "")) for t in client.tags()
                if isinstance(t, dict)}
        latest = newest_tag(tags, include_pre)
        if latest is None or tag_version(latest) <= version:  # type: ignore[operator]
            continue
        pinned_date = client.commit_date(tags[tag]) if tags.get(tag) else None
        rows.append(Outdated(lib_id, repo, tag, latest, pinned_date,
                             client.commit_date(tags[latest]) if tags[latest] else None))
    return rows


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
