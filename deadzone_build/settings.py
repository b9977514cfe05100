"""Where things live and whom to talk to: paths and GitHub settings chosen by environment
variables (or explicit arguments), resolved in one place."""

from __future__ import annotations

import os
from pathlib import Path

REGISTRY_ENV = "DEADZONE_REGISTRY"
ARTIFACTS_ENV = "DEADZONE_ARTIFACTS"
CACHE_ENV = "DEADZONE_CACHE"
DB_ENV = "DEADZONE_DB"

DEFAULT_REGISTRY = "libraries_sources.yaml"
DEFAULT_ARTIFACTS = "artifacts"
DEFAULT_CACHE = "cache"
DEFAULT_DB = "deadzone.db"


def _path(explicit: str | os.PathLike[str] | None, env: str, default: str) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(env) or default)


def registry_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $DEADZONE_REGISTRY, else ./libraries_sources.yaml."""
    return _path(explicit, REGISTRY_ENV, DEFAULT_REGISTRY)


def artifacts_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $DEADZONE_ARTIFACTS, else ./artifacts."""
    return _path(explicit, ARTIFACTS_ENV, DEFAULT_ARTIFACTS)


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $DEADZONE_CACHE, else ./cache."""
    return _path(explicit, CACHE_ENV, DEFAULT_CACHE)


def db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $DEADZONE_DB, else ./deadzone.db."""
    return _path(explicit, DB_ENV, DEFAULT_DB)


DEFAULT_MANIFEST = "manifest.json"


def manifest_path(db: str | os.PathLike[str]) -> Path:
    """The manifest consolidate writes beside `db`: `manifest.json` for `deadzone.db` (the name
    CI, the release assets and older tools know), `<db name>.manifest.json` for any other name,
    so two dbs in one folder never overwrite each other's manifest."""
    db = Path(db)
    name = DEFAULT_MANIFEST if db.name == DEFAULT_DB else f"{db.name}.{DEFAULT_MANIFEST}"
    return db.with_name(name)


# ── GitHub: the API client (publish/github.py) and the doc fetcher's token ──

GITHUB_TOKEN_ENVS = ("GITHUB_TOKEN", "GH_TOKEN")
GITHUB_REPOSITORY_ENV = "GITHUB_REPOSITORY"
GITHUB_API_URL_ENV = "GITHUB_API_URL"
DEFAULT_GITHUB_API_URL = "https://api.github.com"


def github_token(explicit: str | None = None) -> str | None:
    """`explicit`, else $GITHUB_TOKEN, else $GH_TOKEN, stripped; None when all are empty (anonymous).

    Stripped because a token pasted into a secret or a file often ends with a newline, which
    would make every authenticated request a 401."""
    for value in (explicit, *(os.environ.get(name) for name in GITHUB_TOKEN_ENVS)):
        if value and value.strip():
            return value.strip()
    return None


def github_repository(explicit: str | None = None) -> str | None:
    """`explicit`, else $GITHUB_REPOSITORY (OWNER/NAME, checked by the GitHub client), else None."""
    value = (explicit or os.environ.get(GITHUB_REPOSITORY_ENV) or "").strip()
    return value or None


def github_api_url(explicit: str | None = None) -> str:
    """`explicit`, else $GITHUB_API_URL, else https://api.github.com (no trailing slash)."""
    return (explicit or os.environ.get(GITHUB_API_URL_ENV) or DEFAULT_GITHUB_API_URL).strip().rstrip("/")
