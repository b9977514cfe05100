"""doit task generators. `dodo.py` only re-exports these; the work is in the library.

Task state lives in the artifacts themselves (see `artifact_is_current`), not in doit's dep
file: a fresh CI runner with an `actions/cache`-restored artifact and no `.doit.db` skips it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import settings
from .errors import DeadzoneError
from .keys import slot_key
from .registry import Slot, load_registry

DOIT_CONFIG: dict[str, Any] = {
    "backend": "sqlite3",  # dbm differs between Python builds and breaks with two processes
    "dep_file": ".doit.db",
    "default_tasks": ["scrape"],
    "verbosity": 2,
}


@dataclass(frozen=True)
class BuildContext:
    registry: Path
    artifacts: Path
    cache: Path
    slots: list[Slot]


def build_context(registry_var: str | None) -> BuildContext:
    """Read the registry once per doit run; on a bad registry, print the error and exit 1."""
    registry = settings.registry_path(registry_var)
    try:
        slots = load_registry(registry)
    except DeadzoneError as exc:
        print(f"doit: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return BuildContext(registry=registry, artifacts=settings.artifacts_dir(),
                        cache=settings.cache_dir(), slots=slots)


def _not_built_yet(slot: Slot) -> None:
    raise DeadzoneError(f"scraping is not built yet ({slot.label}).")


def scrape_tasks(ctx: BuildContext) -> Iterator[dict[str, Any]]:
    """One `scrape:<slug>` subtask per slot, in registry order."""
    yield {"basename": "scrape", "name": None, "doc": "scrape every slot (doit scrape:<slug> for one)"}
    for slot in ctx.slots:
        yield {
            "basename": "scrape",
            "name": slot.slug,
            "doc": f"fetch, chunk and embed {slot.label} into {ctx.artifacts / slot.slug}",
            "actions": [(_not_built_yet, (slot,))],
            "targets": [],
            "verbosity": 2,
            "meta": {"key": slot_key(slot)},
        }
