"""The exception tree of deadzone-build.

    DeadzoneError                 base: every message names the thing and says what to do next
    ├── RegistryError             libraries_sources.yaml is unreadable or malformed
    ├── SelectionError            a --lib/--version filter matches nothing or is incomplete
    ├── EmbedderError             a pinned model file or the cached ONNX model is wrong
    ├── FetchError                a document could not be fetched (usually caught and reported)
    ├── ScrapeError               a slot could not produce an artifact
    ├── ArtifactError             an artifact directory is missing, corrupt or stale
    ├── ConsolidateError          deadzone.db could not be built
    ├── DatabaseError             deadzone.db is missing, corrupt or built with another pin/schema
    ├── ReleaseError              publishing or downloading a GitHub Release failed
    │   └── ReleaseAssetMissing   the release exists but lacks deadzone.db or its .sha256
    └── PlanError                 the CI plan could not be computed

The library raises these; only the CLI and doit tasks decide how they look.
"""

from __future__ import annotations


class DeadzoneError(Exception):
    """Base class: str(error) is a full sentence ending with what to do."""


class RegistryError(DeadzoneError):
    pass


class SelectionError(DeadzoneError):
    pass


class EmbedderError(DeadzoneError):
    pass


class FetchError(DeadzoneError):
    pass


class ScrapeError(DeadzoneError):
    pass


class ArtifactError(DeadzoneError):
    pass


class ConsolidateError(DeadzoneError):
    pass


class DatabaseError(DeadzoneError):
    pass


class ReleaseError(DeadzoneError):
    pass


class ReleaseAssetMissing(ReleaseError):
    pass


class PlanError(DeadzoneError):
    pass
