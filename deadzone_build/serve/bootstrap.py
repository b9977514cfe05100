"""Which deadzone.db `serve` opens, fetching and caching a released one when there is none.

In order:
  1. --db PATH, else $DEADZONE_DB: used verbatim, never fetched (missing: an error naming it);
  2. ./deadzone.db when it exists and neither --repo nor --tag is given (a local build);
  3. the release db cached under the data dir, fetched first when needed:
       <data dir>/releases/<owner>/<name>/<tag>/deadzone.db   (+ release.json: repo, tag)
     `--tag TAG` serves that release (fetched once, offline afterwards); without it, the latest
     release is asked for on each start, and downloaded only when its tag is not the one cached
     (the previous copy is then removed). If GitHub cannot be reached, the cached copy is served.

The data dir is platformdirs' user data dir for "deadzone-build" (~/.local/share/deadzone-build
on Linux), or $DEADZONE_DATA_DIR. Downloads go through `publish.release.fetch_release`: verified
against the release's deadzone.db.sha256 before an atomic rename. With DEADZONE_DB_OFFLINE=1
nothing here touches the network: only a cached copy is served.

A db is then checked by `db.schema.open_checked` (schema version and embedder pin); a refusal
says which deadzone-build can read it (`incompatibility_hint`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deadzone_build import __version__, settings
from deadzone_build.db import schema as dbschema
from deadzone_build.errors import DatabaseError, DeadzoneError, ReleaseError

DATA_DIR_ENV = "DEADZONE_DATA_DIR"
OFFLINE_ENV = "DEADZONE_DB_OFFLINE"
APP_NAME = "deadzone-build"
MARKER = "release.json"
LATEST = "latest"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ResolvedDb:
    path: Path
    origin: str  # "explicit", "local", "cache", "fetched"
    tag: str = ""


def data_dir() -> Path:
    """$DEADZONE_DATA_DIR, else platformdirs' user data dir for deadzone-build."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit)
    import platformdirs  # small, but only `serve` needs it

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def resolve_db(explicit: str | os.PathLike[str] | None = None, *, repo: str | None = None, tag: str = LATEST,
               log: Log = lambda s: None) -> ResolvedDb:
    """The db to serve (see the module docstring); raises DeadzoneError saying what to do when there is none."""
    if explicit or os.environ.get(settings.DB_ENV):
        path = settings.db_path(explicit)
        if not path.is_file():
            raise DatabaseError(f"{path}: no database there (given by {'--db' if explicit else '$DEADZONE_DB'}). "
                                "Pass the path of a deadzone.db, or leave --db out to serve the latest release.")
        return ResolvedDb(path, "explicit")
    local = Path(settings.DEFAULT_DB)
    if local.is_file() and tag == LATEST and not repo:
        return ResolvedDb(local, "local")
    return _release_db(repo, tag, log)


def _release_db(repo: str | None, tag: str, log: Log) -> ResolvedDb:
    from deadzone_build.publish.github import resolve_repo

    if offline():
        return _cached_or_fail(repo, tag, "DEADZONE_DB_OFFLINE is set, so nothing is downloaded")
    try:
        resolved_repo = resolve_repo(repo)
    except ReleaseError as exc:
        raise DatabaseError(f"no deadzone.db to serve: none at ./{settings.DEFAULT_DB}, no --db, and {exc} "
                            "(serve fetches the latest release of that repository).") from None
    try:
        return _fetch(resolved_repo, tag, log)
    except ReleaseError as exc:
        cached = _cached(resolved_repo, tag)
        if cached is None:
            raise
        log(f"could not check {resolved_repo} for a newer release ({exc}); serving the cached {cached.tag}")
        return cached


def _repo_dir(repo: str) -> Path:
    owner, name = repo.split("/", 1)
    return data_dir() / "releases" / owner / name


def _cached(repo: str | None, tag: str) -> ResolvedDb | None:
    """The cached db of `tag` (LATEST: the most recently fetched one) of `repo`, if any."""
    if not repo:
        return None
    root = _repo_dir(repo)
    candidates = [root / tag] if tag != LATEST else sorted(
        (d for d in root.glob("*") if (d / MARKER).is_file()), key=lambda d: (d / MARKER).stat().st_mtime,
        reverse=True)
    for directory in candidates:
        if (directory / "deadzone.db").is_file() and (directory / MARKER).is_file():
            recorded = json.loads((directory / MARKER).read_text())
            return ResolvedDb(directory / "deadzone.db", "cache", recorded.get("tag", directory.name))
    return None


def _cached_or_fail(repo: str | None, tag: str, why: str) -> ResolvedDb:
    repo = settings.github_repository(repo)
    cached = _cached(repo, tag) if repo and "/" in repo else None
    if cached is not None:
        return cached
    where = _repo_dir(repo) if repo and "/" in repo else data_dir() / "releases"
    raise DatabaseError(f"no deadzone.db to serve: {why}, and no release db is cached under {where} "
                        f"(nor ./{settings.DEFAULT_DB}). Unset DEADZONE_DB_OFFLINE to download it once, "
                        "or pass --db PATH.")


def _fetch(repo: str, tag: str, log: Log) -> ResolvedDb:
    """Download `tag` of `repo` unless it is the one cached; remove other cached tags of `repo`."""
    from deadzone_build.publish.github import GitHubClient, resolve_api_url, resolve_token
    from deadzone_build.publish.release import check_tag, fetch_release

    prune = tag == LATEST  # a pinned --tag leaves the latest copy alone
    if tag == LATEST:
        client = GitHubClient(repo, token=resolve_token(None), api_url=resolve_api_url(None), log=log)
        release = client.latest_release()
        if release is None:
            raise ReleaseError(f"{repo} has no published release, so there is no deadzone.db to serve; "
                               "pass --db PATH, or publish one with `deadzone-build release --tag TAG`.")
        tag = str(release["tag_name"])
    check_tag(tag)
    cached = _cached(repo, tag)
    if cached is not None:
        return cached
    directory = _repo_dir(repo) / tag
    out = fetch_release(tag=tag, repo=repo, out=directory / "deadzone.db", log=log)
    _write_marker(directory, {"repo": repo, "tag": tag})
    for other in _repo_dir(repo).iterdir() if prune else ():
        if other.is_dir() and other != directory:
            shutil.rmtree(other, ignore_errors=True)  # an older release; a running server keeps its open file
    return ResolvedDb(out, "fetched", tag)


def _write_marker(directory: Path, record: dict[str, str]) -> None:
    from deadzone_build.atomic import write_atomic

    write_atomic(directory / MARKER, json.dumps(record, indent=1) + "\n")


def incompatibility_hint(db: Path, problem: DeadzoneError) -> str:
    """`problem` (from open_checked) plus which build reads `db` and how to get a db this build reads."""
    meta = dbschema.read_meta(db) if db.is_file() else {}
    if not meta:
        return str(problem)
    return (f"{problem} This is deadzone-build {__version__} (db schema {dbschema.SCHEMA_VERSION}); the db was "
            f"made by a deadzone-build with schema {meta.get(dbschema.META_SCHEMA_VERSION, '?')}, pipeline "
            f"{meta.get(dbschema.META_PIPELINE_VERSION, '?')} and pin "
            f"{(meta.get(dbschema.META_PIN_ID) or '?')[:16]}. Serve it with that deadzone-build, or serve a db "
            f"this one built or released (e.g. `deadzone-build serve --tag v{__version__}`).")
