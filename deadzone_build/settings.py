"""Where things live: paths chosen by environment variables, resolved in one place."""

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
