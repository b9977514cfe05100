"""The parser pins that shape godoc artifacts: in every godoc slot's key (registry/keys.py).

Constants, so computing a key never imports tree-sitter. `check_installed` makes a build with
other versions fail instead of writing artifacts under a key that names these.
"""

from __future__ import annotations

from deadzone_build.errors import ScrapeError

PARSER_PINS = {"tree-sitter": "0.26.1", "tree-sitter-go": "0.25.0"}
# Bump when the godoc markdown (render.py) or the go/doc rules (reader.py) change.
FORMAT_VERSION = "1"


def key_inputs() -> dict[str, object]:
    return {"parser": dict(PARSER_PINS), "godoc_format": FORMAT_VERSION}


def check_installed() -> None:
    from importlib import metadata  # here, not at import: every registry load imports this module

    for name, pinned in PARSER_PINS.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        if found != pinned:
            raise ScrapeError(f"kind godoc needs {name}=={pinned} (pinned in pyproject.toml and in the "
                              f"slot keys) but {'it is not installed' if found is None else f'{found} is installed'}; "
                              f"run `pip install {name}=={pinned}`.")
