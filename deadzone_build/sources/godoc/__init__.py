"""Kind `godoc`: Go packages documented from source, as go/doc lists them.

Modules: listing.py (URL shapes, Contents API), proxy.py (module zip + sumdb), constraints.py
(which files build), parse.py (tree-sitter-go), reader.py (go/doc's rules), render.py
(markdown), source.py (collect). This module stays light: registry/keys.py imports `pins`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deadzone_build.registry.load import Slot
    from deadzone_build.sources.base import SourceContext, SourceResult


def collect(slot: "Slot", context: "SourceContext") -> "SourceResult":
    """See source.collect (imported here late: tree-sitter loads only when a godoc slot builds)."""
    from deadzone_build.sources.godoc.source import collect as _collect

    return _collect(slot, context)
