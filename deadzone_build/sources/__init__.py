"""Sources: one module per registry `kind`, behind one small interface.

A source turns a slot into documents (cleaned markdown, ready to chunk) and a per-URL report:

    collect(slot, context) -> SourceResult(documents, reports)

`SOURCES` maps each supported kind to its `collect`. A new kind is a new module here plus one
line in `SOURCES`; everything after it (chunk, embed, artifact) is shared. Every source fetches
through `context.client` with `context.settings` (the fetcher's retries, caps and rewrite).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Document", "ProgressFn", "SourceContext", "SourceResult", "source_for",
           "supported_kinds"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing a light submodule (agent.route, used while computing keys) must not
    # import base.py and with it httpx.
    if name in __all__:
        from deadzone_build.sources import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
