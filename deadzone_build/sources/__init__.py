"""Sources: one module per registry `kind`, behind one small interface.

A source turns a slot into documents (cleaned markdown, ready to chunk) and a per-URL report:

    collect(slot, context) -> SourceResult(documents, reports)

`sources/base.py::_registry()` maps each supported kind to its `collect`. A new kind is a new module
here plus one line there; everything after it (chunk, embed, artifact) is shared. Every source
fetches through `context.client` with `context.settings` (the fetcher's retries, caps and rewrite).

The names below load lazily: registry/keys.py imports light modules of this package (a kind's pins)
while a registry loads, and that must not import httpx (`list` and doit no-ops stay fast).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Document", "ProgressFn", "SourceContext", "SourceResult", "source_for"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from deadzone_build.sources import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
