"""Publishing deadzone.db to a GitHub Release, and fetching it back, safely and idempotently.

    release_db(tag=..., repo=..., db=..., registry=...)   gates, then `publish`
    fetch_release(tag="latest", repo=..., out=...)         download, verify, rename into place

Gates (publish/gates.py) run before anything touches the network; each failure names the file
and what to do.
`publish` keeps the release consistent across crashes and retries:

1. find the release by tag (drafts included) or create it as a draft, so the public never
   sees a release without its assets;
2. for each of deadzone.db, deadzone.db.sha256, manifest.json: if the release already holds
   it with the same sha256 (asset `digest`, else the released .sha256 file), skip it;
   otherwise upload it as `<name>.tmp-<sha256 prefix>`, reusing such an asset left by an
   interrupted run when its digest matches, and deleting every other leftover;
3. only once every upload has succeeded, swap: delete the replaced assets (the .sha256 first),
   then rename the staged ones (the .sha256 last), so a released .sha256 always describes the
   released db, and any interruption leaves temp assets that the next run finishes;
4. publish the draft unless --draft.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from deadzone_build.errors import ReleaseAssetMissing, ReleaseError
from deadzone_build.publish.gates import (  # noqa: F401 - re-exported: callers import the gates from here
    ASSET_DB, ASSET_MANIFEST, ASSET_SHA256, TEMP_MARK, LocalAsset, check_release_inputs, check_tag, check_version,
    parse_sha256, sha256_file, sha256_line, temp_name)
from deadzone_build.publish.github import GitHubClient, resolve_api_url, resolve_repo, resolve_token

Log = Callable[[str], None]

# ── publishing ───────────────────────────────────────────────────────────────


@dataclass
class ReleaseOutcome:
    """What `release_db` did (or, with dry_run, would do)."""

    repo: str | None
    tag: str
    dry_run: bool
    assets: list[dict[str, Any]]  # name, size, sha256 of each local file
    release_id: int | None = None
    html_url: str | None = None
    draft: bool | None = None
    created: bool = False  # the release did not exist before this run
    published: bool = False  # this run turned the draft into a published release
    uploaded: list[str] = field(default_factory=list)  # uploaded by this run
    replaced: list[str] = field(default_factory=list)  # swapped into place by this run
    unchanged: list[str] = field(default_factory=list)  # already released with the same sha256
    cleaned: list[str] = field(default_factory=list)  # leftovers of an interrupted run, deleted

    @property
    def changed(self) -> bool:
        return bool(self.replaced or self.created or self.published or self.cleaned)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def publish(client: GitHubClient, tag: str, assets: Sequence[LocalAsset], *, draft: bool = False,
            log: Log = lambda s: None) -> ReleaseOutcome:
    """Make release `tag` hold `assets` (other assets are left alone; see the module docstring)."""
    outcome = ReleaseOutcome(client.repo, tag, False, [a.describe() for a in assets])
    release = _release_shape(client, client.release_by_tag(tag), f"release {tag}", optional=True)
    if release is None:
        release = _release_shape(client, client.create_release(tag, draft=True), f"the new release {tag}")
        outcome.created = True
        log(f"created draft release {tag} in {client.repo}")
    remote = _assets_shape(client, client.list_assets(int(release["id"])), f"release {tag}")
    swaps = [step for asset in assets if (step := _stage(client, release, remote, asset, outcome, log))]
    _swap(client, swaps, outcome, log)
    if release.get("draft") and not draft:
        release = _release_shape(client, client.publish_release(int(release["id"])), f"release {tag}")
        outcome.published = True
        log(f"published release {tag}")
    elif draft and not release.get("draft"):
        log(f"release {tag} is already published; --draft leaves it published")
    if not outcome.changed:
        log(f"release {tag} of {client.repo} already holds {', '.join(a.name for a in assets)} with the "
            f"same sha256; nothing uploaded")
    outcome.release_id, outcome.html_url, outcome.draft = (
        int(release["id"]), release.get("html_url"), bool(release.get("draft")))
    return outcome


def _swap(client: GitHubClient, swaps: list[tuple[LocalAsset, dict[str, Any] | None, dict[str, Any]]],
          outcome: ReleaseOutcome, log: Log) -> None:
    """Delete every replaced asset (the .sha256 first), then rename the staged ones (the .sha256 last).

    GitHub cannot swap two assets at once; this order means a released .sha256 always describes
    the released db: a reader may briefly find an asset missing, never a mismatched pair.
    """
    for asset, old, _new in sorted(swaps, key=lambda s: s[0].name != ASSET_SHA256):
        if old is not None:
            client.delete_asset(int(old["id"]))
    for asset, _old, new in sorted(swaps, key=lambda s: s[0].name == ASSET_SHA256):
        client.rename_asset(int(new["id"]), asset.name)
        outcome.replaced.append(asset.name)
        log(f"{asset.name} is in place (sha256 {asset.sha256})")


def _stage(client: GitHubClient, release: Mapping[str, Any], remote: list[dict[str, Any]], asset: LocalAsset,
           outcome: ReleaseOutcome, log: Log) -> tuple[LocalAsset, dict[str, Any] | None, dict[str, Any]] | None:
    """Bring `asset` up to its swap: None when the release already holds it, else (asset, old, staged)."""
    old = next((a for a in remote if a.get("name") == asset.name), None)
    temps = [a for a in remote if str(a.get("name", "")).startswith(asset.name + TEMP_MARK)]
    current = old is not None and _holds(client, remote, old, asset)
    staged = None if current else next((t for t in temps if _is_staged_copy(t, asset)), None)
    for leftover in temps:
        if leftover is not staged:
            client.delete_asset(int(leftover["id"]))
            outcome.cleaned.append(str(leftover["name"]))
            log(f"deleted {leftover['name']}, left by an interrupted run")
    if current:
        outcome.unchanged.append(asset.name)
        return None
    if staged is not None:
        log(f"reusing {staged['name']}, uploaded by an interrupted run with the same sha256")
    else:
        log(f"uploading {asset.name} ({asset.size} bytes) as {temp_name(asset)}")
        staged = client.upload_asset(release, temp_name(asset), asset.source, asset.content_type)
        outcome.uploaded.append(asset.name)
    return asset, old, staged


def _digest(remote_asset: Mapping[str, Any]) -> str | None:
    """GitHub's `digest` field ("sha256:<hex>"), when this server sends one."""
    digest = remote_asset.get("digest")
    if isinstance(digest, str) and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:").lower()
    return None


def _is_staged_copy(remote_asset: Mapping[str, Any], asset: LocalAsset) -> bool:
    return (remote_asset.get("name") == temp_name(asset) and remote_asset.get("state") == "uploaded"
            and remote_asset.get("size") == asset.size and _digest(remote_asset) == asset.sha256)


def _holds(client: GitHubClient, remote: list[dict[str, Any]], old: Mapping[str, Any], asset: LocalAsset) -> bool:
    """Does the released asset `old` have `asset`'s bytes?"""
    if old.get("state") != "uploaded" or old.get("size") != asset.size:
        return False
    digest = _digest(old)
    if digest is not None:
        return digest == asset.sha256
    # No digest (older servers): the released checksum file speaks for the db, because
    # `_swap` never lets a .sha256 sit beside a db it does not describe.
    if asset.name == ASSET_DB:
        checksum = next((a for a in remote if a.get("name") == ASSET_SHA256 and a.get("state") == "uploaded"), None)
        if checksum is None:
            return False
        try:
            return parse_sha256(client.read_asset(checksum), ASSET_SHA256) == asset.sha256
        except ReleaseError:
            return False
    return hashlib.sha256(client.read_asset(old)).hexdigest() == asset.sha256


def release_db(*, tag: str, repo: str | None, db: Path, registry: Path, draft: bool = False,
               dry_run: bool = False, allow_missing: bool = False, allow_incomplete: bool = False,
               expect_version: str | None = None,
               api_url: str | None = None, token: str | None = None, log: Log = lambda s: None,
               sleep: Callable[[float], None] = time.sleep) -> ReleaseOutcome:
    """Gate `db` and publish it with its .sha256 and manifest.json to release `tag` of `repo`.

    repo: `repo`, else $GITHUB_REPOSITORY; token: `token`, else $GITHUB_TOKEN, else $GH_TOKEN;
    API: `api_url`, else $GITHUB_API_URL, else https://api.github.com. With `dry_run`, only
    the gates run and nothing touches the network.
    """
    check_tag(tag)
    if expect_version is not None:
        check_version(tag, expect_version)
    resolved_repo = resolve_repo(repo) if (repo or os.environ.get("GITHUB_REPOSITORY") or not dry_run) else None
    resolved_token = resolve_token(token)
    if not dry_run and not resolved_token:
        raise ReleaseError("no GitHub token: set GITHUB_TOKEN (or GH_TOKEN) to a token with contents: write "
                           f"on {resolved_repo}.")
    assets = check_release_inputs(Path(db), Path(registry), allow_missing=allow_missing,
                                  allow_incomplete=allow_incomplete)
    log(f"gates passed: {db} (sha256 {assets[0].sha256}) may be released as {tag}")
    if dry_run:
        return ReleaseOutcome(resolved_repo, tag, True, [a.describe() for a in assets])
    assert resolved_repo is not None
    client = GitHubClient(resolved_repo, token=resolved_token, api_url=resolve_api_url(api_url), log=log,
                          sleep=sleep)
    return publish(client, tag, assets, draft=draft, log=log)


def _unexpected(client: GitHubClient, what: str, value: Any) -> ReleaseError:
    shown = repr(value)[:120]
    return ReleaseError(f"the GitHub API at {client.api_url} answered for {what} with {shown}, which is not what "
                        "GitHub sends (a proxy or captive portal page?); check GITHUB_API_URL and the network, "
                        "then run again.")


def _release_shape(client: GitHubClient, value: Any, what: str, optional: bool = False) -> dict[str, Any] | None:
    """`value` if it looks like a release object (a mapping with an integer id), else a ReleaseError."""
    if value is None and optional:
        return None
    if not isinstance(value, dict) or isinstance(value.get("id"), bool) or not isinstance(value.get("id"), int):
        raise _unexpected(client, what, value)
    return value


def _assets_shape(client: GitHubClient, value: Any, what: str) -> list[dict[str, Any]]:
    """`value` if it is a list of asset objects (mappings with an integer id and a name)."""
    if not isinstance(value, list) or not all(
            isinstance(a, dict) and isinstance(a.get("id"), int) and isinstance(a.get("name"), str) for a in value):
        raise _unexpected(client, f"the assets of {what}", value)
    return value


# ── fetching ─────────────────────────────────────────────────────────────────


def fetch_release(*, tag: str = "latest", repo: str | None, out: Path, api_url: str | None = None,
                  token: str | None = None, log: Log = lambda s: None,
                  sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download deadzone.db of release `tag` ("latest": the latest published one) to `out`.

    The bytes go to a temp file beside `out` and are checked against the release's
    deadzone.db.sha256 before the rename: on any failure `out` is left as it was.
    """
    client = GitHubClient(resolve_repo(repo), token=resolve_token(token), api_url=resolve_api_url(api_url),
                          log=log, sleep=sleep)
    release = _release_shape(client, client.latest_release() if tag == "latest" else client.release_by_tag(tag),
                             f"release {tag}", optional=True)
    if release is None:
        raise ReleaseError(f"{client.repo} has no {'published release' if tag == 'latest' else f'release {tag}'}; "
                           f"check --repo and --tag, or publish one with `deadzone-build release --tag TAG`.")
    label = f"release {release.get('tag_name', tag)} of {client.repo}"
    assets = {a["name"]: a for a in _assets_shape(client, client.list_assets(int(release["id"])), label)
              if a.get("state") == "uploaded"}
    for name in (ASSET_DB, ASSET_SHA256):
        if name not in assets:
            raise ReleaseAssetMissing(f"{label} has no {name} asset; publish it with `deadzone-build release`, "
                               f"or pick another --tag.")
    expected = parse_sha256(client.read_asset(assets[ASSET_SHA256]), f"{ASSET_SHA256} of {label}")
    digest = _digest(assets[ASSET_DB])
    if digest is not None and digest != expected:
        raise ReleaseError(f"{label} is inconsistent: its {ASSET_DB} has sha256 {digest} but its {ASSET_SHA256} "
                           f"says {expected} (a publish may be in progress); {out} was left untouched, "
                           f"run again later.")
    log(f"downloading {ASSET_DB} ({assets[ASSET_DB].get('size')} bytes) of {label}")
    _download_verified(client, assets[ASSET_DB], Path(out), expected, label)
    log(f"{out} verified (sha256 {expected})")
    return Path(out)


def _download_verified(client: GitHubClient, asset: Mapping[str, Any], out: Path, expected: str,
                       label: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            client.download_asset(asset, fh)
            fh.flush()
            os.fsync(fh.fileno())
        actual = sha256_file(tmp)
        if actual != expected:
            raise ReleaseError(f"the {ASSET_DB} downloaded from {label} hashes to {actual}, but its "
                               f"{ASSET_SHA256} says {expected}; {out} was left untouched. Run again; if it "
                               f"persists, re-publish the release.")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
