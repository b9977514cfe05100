"""Publishing deadzone.db to a GitHub Release, and fetching it back, safely and idempotently.

    release_db(tag=..., repo=..., db=..., registry=...)   gates, then `publish`
    fetch_release(tag="latest", repo=..., out=...)         download, verify, rename into place

Gates run before anything touches the network; each failure names the file and what to do.
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
import json
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from deadzone_build.db import schema as dbschema
from deadzone_build.db.read import compatibility_problem
from deadzone_build.errors import DatabaseError, ReleaseAssetMissing, ReleaseError
from deadzone_build.publish.github import GitHubClient, resolve_api_url, resolve_repo, resolve_token
from deadzone_build.registry.keys import registry_digest
from deadzone_build.registry.load import load_registry
from deadzone_build.settings import manifest_path

ASSET_DB = "deadzone.db"
ASSET_SHA256 = "deadzone.db.sha256"
ASSET_MANIFEST = "manifest.json"
TEMP_MARK = ".tmp-"

Log = Callable[[str], None]

_SHA256_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](\S.*)")
_TAG_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 1 << 20


# ── local files ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class LocalAsset:
    """One file to publish: its asset name, bytes (a path to stream, or the bytes) and sha256."""

    name: str
    source: Path | bytes
    sha256: str
    size: int
    content_type: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_sha256(text: bytes | str, source: str) -> str:
    """The hex digest of a `sha256sum` line (`<hex>  deadzone.db`)."""
    line = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip()
    match = _SHA256_LINE.fullmatch(line)
    if not match:
        raise ReleaseError(f"{source} is not a sha256sum line ('<64 hex digits>  deadzone.db'); "
                           f"rebuild it with `doit consolidate`.")
    return match.group(1).lower()


def sha256_line(hex_digest: str) -> bytes:
    """The canonical checksum file: what `sha256sum -c` checks next to a downloaded deadzone.db."""
    return f"{hex_digest}  {ASSET_DB}\n".encode()


def temp_name(asset: LocalAsset) -> str:
    """Where `asset` waits before its swap; the digest prefix lets a re-run recognise it."""
    return f"{asset.name}{TEMP_MARK}{asset.sha256[:16]}"


# ── gates ────────────────────────────────────────────────────────────────────


def check_tag(tag: str) -> None:
    """`tag` must be a name `git tag` accepts (git check-ref-format rules for refs/tags/<tag>)."""
    reason = _tag_problem(tag)
    if reason:
        raise ReleaseError(f"tag {tag!r} is not a valid git tag name ({reason}); use e.g. --tag v1.2.0.")


def _tag_problem(tag: str) -> str | None:
    if not tag:
        return "it is empty"
    if bad := _TAG_FORBIDDEN.search(tag):
        return f"it contains {bad.group()!r}"
    for needle in ("..", "@{", "//"):
        if needle in tag:
            return f"it contains {needle!r}"
    if tag == "@" or tag.startswith(("-", "/")) or tag.endswith(("/", ".")):
        return "it starts with '-' or '/', ends with '/' or '.', or is '@'"
    for part in tag.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return f"its part {part!r} starts with '.' or ends with '.lock'"
    return None


def check_version(tag: str, version: str) -> None:
    """--expect-version: the tag must name `version`, with or without a leading `v`."""
    if tag not in (version, f"v{version}"):
        raise ReleaseError(f"tag {tag} does not match the expected version {version} (--expect-version); "
                           f"tag the release v{version}, or bump the version before releasing.")


def check_release_inputs(db: Path, registry: Path, *, allow_missing: bool = False) -> list[LocalAsset]:
    """Every gate on the files to publish; the three assets, in swap order, when all pass."""
    _check_sqlite_file(db)
    meta = _check_db_contents(db)
    digest = sha256_file(db)
    _check_checksum_file(db, digest)
    _check_meta(db, meta, registry, allow_missing)
    manifest = _check_manifest(db)
    checksum = sha256_line(digest)
    return [
        LocalAsset(ASSET_DB, db, digest, db.stat().st_size, "application/vnd.sqlite3"),
        LocalAsset(ASSET_SHA256, checksum, hashlib.sha256(checksum).hexdigest(), len(checksum), "text/plain"),
        LocalAsset(ASSET_MANIFEST, manifest, sha256_file(manifest), manifest.stat().st_size, "application/json"),
    ]


_REBUILD = "rebuild it with `doit consolidate` (or pass --db PATH)"


def _check_sqlite_file(db: Path) -> None:
    if not db.is_file():
        raise DatabaseError(f"{db} does not exist; {_REBUILD}.")
    with db.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise DatabaseError(f"{db} is not an SQLite database; {_REBUILD}.")
    if 2 in header[18:20]:  # file format versions 2 = WAL: the bytes may live in a -wal file
        raise DatabaseError(f"{db} is in WAL journal mode, so its content may sit in a -wal file that "
                            f"would not be published; {_REBUILD}, which writes journal_mode=DELETE.")


def _check_db_contents(db: Path) -> dict[str, str]:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{db} cannot be opened ({exc}); {_REBUILD}.") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise DatabaseError(f"{db} fails SQLite's integrity check ({'; '.join(problems[:3])}); {_REBUILD}.")
        try:
            libraries = conn.execute("SELECT count(*) FROM libraries").fetchone()[0]
        except sqlite3.OperationalError:
            raise DatabaseError(f"{db} has no libraries table; {_REBUILD}.") from None
        if libraries < 1:
            raise DatabaseError(f"{db} holds no library, so there is nothing to publish; scrape the "
                                f"registry (`doit`) and {_REBUILD.split(' (')[0]}.")
        return dbschema.read_meta(conn)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{db} is unreadable ({exc}); {_REBUILD}.") from None
    finally:
        conn.close()


def _check_checksum_file(db: Path, digest: str) -> None:
    path = db.with_name(db.name + ".sha256")
    if not path.is_file():
        raise DatabaseError(f"{path} is missing, so clients could not verify the download; {_REBUILD}.")
    recorded = parse_sha256(path.read_bytes(), str(path))
    if recorded != digest:
        raise DatabaseError(f"{db} hashes to {digest} but {path} says {recorded}: the db changed after it "
                            f"was built; {_REBUILD}.")


def _check_meta(db: Path, meta: Mapping[str, str], registry: Path, allow_missing: bool) -> None:
    problem = compatibility_problem(dict(meta))  # the same schema/pin rule every reader applies
    if problem:
        raise DatabaseError(f"{db}: {problem}; re-run `doit` so every library is embedded with the current "
                            f"model, then {_REBUILD}.")
    lib_filter = meta.get(dbschema.META_LIB_FILTER)
    if lib_filter != "":
        what = "records no lib_filter" if lib_filter is None else f"was built from --lib {lib_filter} only"
        raise DatabaseError(f"{db} {what}; a release must hold the whole registry: run `doit consolidate` "
                            f"without --lib.")
    expected = registry_digest(load_registry(registry))
    if meta.get(dbschema.META_REGISTRY_DIGEST) != expected:
        raise DatabaseError(f"{db} was built from another registry than {registry} (registry digest "
                            f"{meta.get(dbschema.META_REGISTRY_DIGEST)!r}, expected {expected!r}); re-run "
                            f"`doit`, or pass --registry the file it was built from.")
    missing = _missing_slots(db, meta)
    if missing and not allow_missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatabaseError(f"{db} lacks {len(missing)} of {meta.get(dbschema.META_SLOTS_TOTAL, '?')} slots "
                            f"({shown}); scrape them (`doit`) and rebuild, or pass --allow-missing.")


def _missing_slots(db: Path, meta: Mapping[str, str]) -> list[str]:
    raw = meta.get(dbschema.META_SLOTS_MISSING)
    try:
        missing = json.loads(raw) if raw is not None else None
    except ValueError:
        missing = None
    if not isinstance(missing, list):
        raise DatabaseError(f"{db} records no readable slots_missing list ({raw!r}); {_REBUILD}.")
    return [str(slug) for slug in missing]


def _check_manifest(db: Path) -> Path:
    path = manifest_path(db)  # published as ASSET_MANIFEST whatever the local name
    try:
        json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatabaseError(f"{path} is missing; {_REBUILD}.") from None
    except ValueError as exc:
        raise DatabaseError(f"{path} is not valid JSON ({exc}); {_REBUILD}.") from None
    return path


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
    release = client.release_by_tag(tag)
    if release is None:
        release = client.create_release(tag, draft=True)  # hidden until its assets are in place
        outcome.created = True
        log(f"created draft release {tag} in {client.repo}")
    remote = client.list_assets(int(release["id"]))
    swaps = [step for asset in assets if (step := _stage(client, release, remote, asset, outcome, log))]
    _swap(client, swaps, outcome, log)
    if release.get("draft") and not draft:
        release = client.publish_release(int(release["id"]))
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
               dry_run: bool = False, allow_missing: bool = False, expect_version: str | None = None,
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
    assets = check_release_inputs(Path(db), Path(registry), allow_missing=allow_missing)
    log(f"gates passed: {db} (sha256 {assets[0].sha256}) may be released as {tag}")
    if dry_run:
        return ReleaseOutcome(resolved_repo, tag, True, [a.describe() for a in assets])
    assert resolved_repo is not None
    client = GitHubClient(resolved_repo, token=resolved_token, api_url=resolve_api_url(api_url), log=log,
                          sleep=sleep)
    return publish(client, tag, assets, draft=draft, log=log)


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
    release = client.latest_release() if tag == "latest" else client.release_by_tag(tag)
    if release is None:
        raise ReleaseError(f"{client.repo} has no {'published release' if tag == 'latest' else f'release {tag}'}; "
                           f"check --repo and --tag, or publish one with `deadzone-build release --tag TAG`.")
    label = f"release {release.get('tag_name', tag)} of {client.repo}"
    assets = {a["name"]: a for a in client.list_assets(int(release["id"])) if a.get("state") == "uploaded"}
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
