"""Sources: one module per registry `kind`, behind one small interface.

A source turns a slot into documents (cleaned markdown, ready to chunk) and a per-URL report:

    collect(slot, context) -> SourceResult(documents, reports)

`SOURCES` maps each supported kind to its `collect`. A new kind is a new module here plus one
line in `SOURCES`; everything after it (chunk, embed, artifact) is shared. Every source fetches
through `context.client` with `context.settings` (the fetcher's retries, caps and rewrite).
"""

from __future__ import annotations

from deadzone_build.sources.base import (Document, ProgressFn, SourceContext, SourceResult, source_for,
                                          supported_kinds)

__all__ = ["Document", "ProgressFn", "SourceContext", "SourceResult", "source_for",
           "supported_kinds"]
